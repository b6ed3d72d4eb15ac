"""Multi-process launches (`accelerate launch`, `torchrun`): one experiment, many ranks.

Every rank composes its own Hydra config, so anything time-dependent (the run directory's
timestamp) would differ between ranks. Before Hydra starts, rank 0's timestamp is sent to
all ranks, which then share one run directory, one MLflow run and one set of checkpoints.

On a machine without GPUs, `accelerate launch --multi_gpu --num_processes 2` starts two
processes but accelerate would then leave each training alone; runner makes them one gloo
process group on the CPU.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"
STAMP_ENV = "RUNNER_RUN_STAMP"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def run_stamp() -> str:
    """The timestamp in run directory names: shared by every rank of one launch."""
    return os.environ.get(STAMP_ENV) or datetime.now().strftime(STAMP_FORMAT)


def use_cpu(cpu_requested: bool) -> bool:
    """CPU training: asked for, or a multi-process launch on a machine without GPUs."""
    if cpu_requested:
        return True
    if world_size() > 1:
        import torch

        return not torch.cuda.is_available()
    return False


def init_process_group(cpu_requested: bool):
    """Start (or get) accelerate's process state; the first call decides the backend."""
    from accelerate import PartialState

    return PartialState(cpu=use_cpu(cpu_requested))


def share_run_stamp(argv: list[str]) -> None:
    """Before Hydra composes anything: give every rank rank 0's run timestamp."""
    if world_size() <= 1 or os.environ.get(STAMP_ENV):
        return
    import torch.distributed as dist

    cpu = any(a.replace(" ", "").lower() in ("trainer.cpu=true", "trainer.cpu=1") for a in argv)
    state = init_process_group(cpu)
    stamp = [datetime.now().strftime(STAMP_FORMAT) if state.is_main_process else None]
    dist.broadcast_object_list(stamp, src=0)
    os.environ[STAMP_ENV] = stamp[0]


def warn_if_launched_alone() -> None:
    """`accelerate launch --cpu --num_processes 2` silently starts ONE process: say so."""
    if world_size() > 1:
        return
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    args = [a.decode(errors="replace") for a in parent]
    asked = None
    for i, arg in enumerate(args):
        if arg in ("--num_processes", "--nproc_per_node", "--nproc-per-node") and i + 1 < len(
                args):
            asked = args[i + 1]
        elif arg.startswith(("--num_processes=", "--nproc_per_node=", "--nproc-per-node=")):
            asked = arg.split("=", 1)[1]
    if asked and asked.isdigit() and int(asked) > 1:
        log.warning(
            "the launcher asked for %s processes but this run is alone (WORLD_SIZE is not set). "
            "`accelerate launch --cpu --num_processes N` starts a single process; on a machine "
            "without GPUs use `accelerate launch --multi_gpu --num_processes %s -m runner ...` "
            "(runner trains the processes on the CPU with gloo).", asked, asked)
        print(f"warning: {asked} processes were asked for, but this run is alone; see the log",
              file=sys.stderr)

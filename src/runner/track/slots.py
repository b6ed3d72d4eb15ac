"""Where a parallel sweep job runs: its share of the cores, a GPU of its own, and the
tasks of a multi-task SLURM job joined into one accelerate run. Each claim is a lock
file per slot in the sweep directory, so jobs in separate processes never share one."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def parallel_jobs(hc) -> int:
    """How many jobs the launcher runs at once (the joblib launcher; others: one)."""
    if "Joblib" not in str(hc.launcher.get("_target_", "")):
        return 1
    n_jobs = hc.launcher.get("n_jobs") or -1
    return os.cpu_count() or 1 if n_jobs < 0 else n_jobs  # joblib: -1 means every core


@contextmanager
def _claimed_slot(sweep_dir: Path, slots: int, kind: str = "core",
                  only: int | None = None) -> Iterator[int]:
    """A slot number no other running job of the sweep holds (a lock file per slot);
    `only`: wait for that one slot."""
    from filelock import FileLock, Timeout

    folder = Path(sweep_dir) / f".{kind}-slots"
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(slots) if only is None else [only]:
            lock = FileLock(folder / f"{slot}.lock")
            try:
                lock.acquire(timeout=0)  # held by a running job: try the next slot
            except Timeout:
                continue
            try:
                yield slot
            finally:
                lock.release()
            return
        time.sleep(0.2)


@contextmanager
def share_of_cores(hc) -> Iterator[list[int] | None]:
    """Pin a parallel job to its own share of the cores, with as many torch threads, so
    jobs running side by side do not fight over the same cores."""
    jobs = parallel_jobs(hc)
    if jobs <= 1 or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    import torch

    allowed = sorted(os.sched_getaffinity(os.getppid()))  # the cores the sweep may use
    share = max(1, len(allowed) // jobs)
    with _claimed_slot(Path(hc.sweep.dir), min(jobs, len(allowed))) as slot:
        cores = allowed[slot * share:(slot + 1) * share]
        before, threads = os.sched_getaffinity(0), torch.get_num_threads()
        os.sched_setaffinity(0, cores)
        torch.set_num_threads(len(cores))
        log.info("job %d pinned to cores %s (%d parallel jobs)", hc.job.num, cores, jobs)
        try:
            yield cores
        finally:
            os.sched_setaffinity(0, before)
            torch.set_num_threads(threads)


GPU_ENV = "CUDA_VISIBLE_DEVICES"
_sweep_gpus: list[str] | None = None  # the GPUs the sweep hands out, as this worker saw them
_process_gpu: str | None = None  # the one this worker process took (CUDA keeps it for life)


def sweep_gpus() -> list[str]:
    """The GPUs parallel jobs share out: CUDA_VISIBLE_DEVICES as the sweep was started with
    it, else every GPU nvidia-smi lists (none without a driver)."""
    global _sweep_gpus
    if _sweep_gpus is None:
        visible = os.environ.get(GPU_ENV)
        if visible is not None:
            _sweep_gpus = [d.strip() for d in visible.split(",") if d.strip()]
        else:
            try:
                listed = subprocess.run(["nvidia-smi", "--query-gpu=index",
                                         "--format=csv,noheader"], capture_output=True,
                                        text=True, timeout=30).stdout
            except (OSError, subprocess.SubprocessError):
                listed = ""
            _sweep_gpus = [line.strip() for line in listed.splitlines() if line.strip()]
    return _sweep_gpus


@contextmanager
def own_gpu(hc) -> Iterator[str | None]:
    """Give a parallel job a GPU of its own (CUDA_VISIBLE_DEVICES, set before torch touches
    CUDA); with more jobs than GPUs the rest wait for one to free up. A worker process keeps
    the GPU it first took: CUDA cannot switch devices once started in a process."""
    global _process_gpu
    gpus = sweep_gpus() if parallel_jobs(hc) > 1 else []
    if not gpus:
        yield None
        return
    only = gpus.index(_process_gpu) if _process_gpu in gpus else None
    with _claimed_slot(Path(hc.sweep.dir), len(gpus), kind="gpu", only=only) as slot:
        _process_gpu = gpus[slot]
        os.environ[GPU_ENV] = _process_gpu
        log.info("job %d runs on GPU %s (%d GPUs, %d parallel jobs)", hc.job.num,
                 _process_gpu, len(gpus), parallel_jobs(hc))
        yield _process_gpu


def join_job_tasks() -> None:
    """A submitit (SLURM) job of several tasks (hydra.launcher.tasks_per_node > 1): its
    tasks become the processes of one accelerate run, from the allocation's own rank
    numbers. Each task sees every GPU of its node and takes the one of its local rank."""
    if not os.environ.get("SUBMITIT_EXECUTOR") or "WORLD_SIZE" in os.environ:
        return
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)

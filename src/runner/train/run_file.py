"""run.json in each run directory: the run's name, its hyperparameters, its status and its
MLflow run id. It is how `trainer.resume=auto` finds an unfinished run to continue, and how
the next start learns that a run was killed."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner.errors import Interrupted, Preempted, Pruned
from runner.files import atomic_write, pid_alive, remove_stale_staging, write_json

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"  # the run's resolved config, with what the data decided


def write_run_config(run_dir: Path, cfg) -> None:
    """The config the run trained with, for `runner.evaluate` / `runner.predict`."""
    from omegaconf import OmegaConf

    atomic_write(Path(run_dir) / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))


def write_run_file(run_dir: Path, **fields: Any) -> None:
    path = Path(run_dir) / RUN_FILE
    current = json.loads(path.read_text()) if path.is_file() else {}
    current.update(fields)
    current = {k: v for k, v in current.items() if v is not None}  # None: remove the key
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, current)


def read_run_file(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def sweep_leftovers(run_dir: Path) -> None:
    """Remove what a killed run left staged in its directory, as a run starts there (resumed
    or not): pid-named staging of dead processes, and unfinished checkpoint staging unless
    run.json names another live run in this directory (then it may be that run's)."""
    from runner.train.checkpoints import STAGING

    gone = remove_stale_staging(run_dir)
    owner = read_run_file(run_dir)
    pid = owner.get("pid")
    if (owner.get("status") == "RUNNING" and isinstance(pid, int) and pid != os.getpid()
            and pid_alive(pid)):
        log.warning("run.json says process %d still runs in %s: its staging is left alone",
                    pid, run_dir)
    else:
        for staged in (Path(run_dir) / "checkpoints").glob(f"{STAGING}*"):
            shutil.rmtree(staged) if staged.is_dir() else staged.unlink()
            gone.append(staged)
    for path in gone:
        log.warning("removed %s, left by an interrupted run", path)


@contextmanager
def recorded_status(run_dir: Path, is_main_process: bool, **fields: Any) -> Iterator[None]:
    """Keep run.json's status true: RUNNING, then FINISHED, FAILED or KILLED (written by
    the main process only)."""
    if not is_main_process:
        yield
        return
    # The error of an earlier, interrupted attempt is not this attempt's: a resumed run
    # that finishes must not carry it.
    write_run_file(run_dir, **fields, status="RUNNING", pid=os.getpid(), error=None)
    try:
        yield
    except BaseException as err:
        status = ("PREEMPTED" if isinstance(err, Preempted)
                  else "KILLED" if isinstance(err, (KeyboardInterrupt, Interrupted, Pruned))
                  else "FAILED")
        try:
            write_run_file(run_dir, status=status, error=str(err)[:2000])
        except OSError as unwritten:  # a full disk: the run's own error is the one to show
            log.error("run.json could not record the run as %s: %s", status, unwritten)
        raise
    write_run_file(run_dir, status="FINISHED")

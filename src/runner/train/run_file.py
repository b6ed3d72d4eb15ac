"""run.json in each run directory: the run's name, its hyperparameters, its status and its
MLflow run id. It is how `trainer.resume=auto` finds an unfinished run to continue, and how
the next start learns that a run was killed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner.errors import Interrupted, Preempted, Pruned
from runner.files import atomic_write, write_json

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
        write_run_file(run_dir, status=status, error=str(err)[:2000])
        raise
    write_run_file(run_dir, status="FINISHED")

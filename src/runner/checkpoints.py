"""Checkpoints that survive crashes, and finding the run to resume.

A checkpoint is written into a hidden staging folder and renamed into place only when
complete (rename is atomic on one filesystem), so a crash mid-save leaves a staging folder
that is ignored and cleaned up, never a half checkpoint that resume would pick. Old
checkpoints are pruned only after the new one is complete.

Each run directory also holds run.json: the run's name, its hyperparameters, its status and
its MLflow run id, which is how `trainer.resume=auto` finds an unfinished run to continue.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner.errors import Interrupted, Preempted, RunnerError

log = logging.getLogger(__name__)

PREFIX = "step-"
STAGING = ".staging-"
PROGRESS = "progress.json"
RUN_FILE = "run.json"


class ResumeError(RunnerError):
    pass


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """A run directory's complete checkpoints (progress.json written), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / PROGRESS).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


class Checkpointer:
    """Saves and finds full training state under <output_dir>/checkpoints."""

    def __init__(self, output_dir: Path, keep: int, accelerator):
        self.root = Path(output_dir) / "checkpoints"
        self.keep = keep
        self.accelerator = accelerator

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return complete_checkpoints(self.root.parent)

    def latest(self) -> Path | None:
        found = self.complete()
        return found[-1] if found else None

    def clean_staging(self) -> None:
        if self.root.is_dir() and self.accelerator.is_main_process:
            for stale in self.root.glob(f"{STAGING}*"):
                log.warning("removing an incomplete checkpoint left by an interrupted save: %s",
                            stale)
                shutil.rmtree(stale, ignore_errors=True)

    def save(self, step: int, progress: dict[str, Any]) -> Path:
        accelerator = self.accelerator
        final = self.root / f"{PREFIX}{step:08d}"
        staging = self.root / f"{STAGING}{step:08d}"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(str(staging))
            if accelerator.is_main_process:
                # progress.json is written last: its presence marks the state complete.
                _write_json(staging / PROGRESS, {**progress, "saved_at": time.time()})
                if final.exists():  # same step saved again (e.g. epoch end == save_every)
                    shutil.rmtree(final)
                os.replace(staging, final)
        except OSError as err:
            if accelerator.is_main_process:
                shutil.rmtree(staging, ignore_errors=True)
            previous = self.latest()
            raise RunnerError(
                f"saving the checkpoint for step {step} failed: {err}. "
                f"The previous checkpoint is intact: {previous or 'none yet'}. Free disk space "
                "or point trainer.output_dir at a writable disk, then resume with "
                "trainer.resume=auto."
            ) from err
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for old in self.complete()[:-self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def load(self, path: Path) -> dict[str, Any]:
        import pickle

        try:
            # accelerate unpickles optimizer, scheduler and RNG state with weights_only=True:
            # tensors and plain values only, never arbitrary objects.
            self.accelerator.load_state(str(path))
        except pickle.UnpicklingError as err:
            raise ResumeError(
                f"refusing to resume from {path}: a file in it holds pickled objects that are "
                f"not plain tensors or values ({str(err).splitlines()[0]}). It was not written "
                "by runner, or was tampered with; delete that checkpoint to resume from an "
                "older one, or start fresh.") from None
        return json.loads((path / PROGRESS).read_text())


# ----------------------------------------------------------------------------- run.json


def write_run_file(run_dir: Path, **fields: Any) -> None:
    path = Path(run_dir) / RUN_FILE
    current = json.loads(path.read_text()) if path.is_file() else {}
    current.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, current)


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
    write_run_file(run_dir, **fields, status="RUNNING", pid=os.getpid())
    try:
        yield
    except BaseException as err:
        status = ("PREEMPTED" if isinstance(err, Preempted)
                  else "KILLED" if isinstance(err, (KeyboardInterrupt, Interrupted)) else "FAILED")
        write_run_file(run_dir, status=status, error=str(err)[:2000])
        raise
    write_run_file(run_dir, status="FINISHED")


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def find_run_to_resume(name: str, search_roots: list[Path], exclude: Path) -> Path | None:
    """The newest unfinished run with this name that has a complete checkpoint."""
    candidates = []
    for root in search_roots:
        if not root.is_dir():
            continue
        for run_file in root.rglob(RUN_FILE):
            run_dir = run_file.parent
            if run_dir.resolve() == exclude.resolve():
                continue
            info = read_run_file(run_dir)
            if info.get("name") != name or info.get("status") == "FINISHED":
                continue
            if complete_checkpoints(run_dir):
                candidates.append((run_file.stat().st_mtime, run_dir))
    return max(candidates)[1] if candidates else None


def resolve_resume(resume: str, name: str, hyperparameters: dict[str, Any], output_dir: Path,
                   search_roots: list[Path]) -> Path | None:
    """The run directory to continue, or None for a fresh start.

    `auto` takes the output directory itself if it holds checkpoints, else the newest
    unfinished run of the same name; a path names the run directory. A run whose
    hyperparameters differ from the current ones is refused, naming what changed.
    """
    if resume == "never":
        if read_run_file(output_dir).get("status") == "PREEMPTED":
            log.info("this run was preempted: resuming it from its last checkpoint")
            return resolve_resume("auto", name, hyperparameters, output_dir, search_roots)
        return None
    if resume == "auto":
        run_dir = (output_dir if complete_checkpoints(output_dir)
                   else find_run_to_resume(name, search_roots, output_dir))
        if run_dir is None:
            log.info("trainer.resume=auto: no unfinished run of %s with a checkpoint; "
                     "starting fresh", name)
            return None
    else:
        run_dir = Path(resume).expanduser().resolve()
        if not (run_dir / "checkpoints").is_dir():
            raise ResumeError(f"trainer.resume={resume!r}: {run_dir} has no checkpoints/ folder. "
                              "Give the run directory that holds checkpoints/, or use "
                              "trainer.resume=auto.")
    previous = read_run_file(run_dir).get("hyperparameters")
    if previous is not None:
        changes = changed_keys(previous, hyperparameters)
        if changes:
            raise ResumeError(
                f"refusing to resume {run_dir}: its hyperparameters differ from this run's:\n  "
                + "\n  ".join(changes)
                + "\nResume with the same settings, or start a fresh run (trainer.resume=never)."
            )
    return run_dir

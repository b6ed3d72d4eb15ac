"""Checkpoints that survive crashes, and finding the run to resume.

A checkpoint is written into a hidden staging folder and renamed into place only when
complete (rename is atomic on one filesystem), so a crash mid-save leaves a staging folder
that is ignored and cleaned up (by a resume, which takes the run over, and as any run starts
in that directory: run_file.sweep_leftovers), never a half checkpoint that resume would pick. Old
checkpoints are pruned only after the new one is complete.

"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from runner.errors import RunnerError, disk_error
from runner.files import unreadable_safetensors, write_json

log = logging.getLogger(__name__)

PREFIX = "step-"
STAGING = ".staging-"
PROGRESS = "progress.json"
FILES = "files"  # in progress.json: each file of the checkpoint and its size in bytes


class ResumeError(RunnerError):
    pass


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """A run directory's complete checkpoints (progress.json written), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / PROGRESS).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def file_sizes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != PROGRESS}


def damage(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be trusted (a file missing, truncated or
    unreadable), or None when it looks whole. Checkpoints from before the file list are
    checked for readable progress and weights only."""
    try:
        progress = json.loads((path / PROGRESS).read_text())
    except (OSError, ValueError) as err:
        return f"{PROGRESS} is unreadable ({err})"
    for name, size in progress.get(FILES, {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, {size} were written"
    for weights in sorted(path.rglob("*.safetensors")):
        why = unreadable_safetensors(weights)
        if why:
            return f"{weights.name} is unreadable ({why})"
    return None


def saved_epoch(run_dir: Path) -> int:
    """Epochs completed at the checkpoint a resume loads: the newest whole one (0: none)."""
    whole = [p for p in complete_checkpoints(run_dir) if damage(p) is None]
    return json.loads((whole[-1] / PROGRESS).read_text())["epoch"] if whole else 0


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

    def newest_whole(self) -> Path | None:
        """The newest checkpoint that passes `damage`; each damaged one newer than it is
        named in a warning (and left in place for a look)."""
        for path in reversed(self.complete()):
            why = damage(path)
            if why is None:
                return path
            before = [p for p in self.complete() if p.name < path.name]
            log.warning("checkpoint %s is damaged (%s): falling back to %s", path, why,
                        before[-1] if before else "none (no older checkpoint)")
        return None

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
                # progress.json is written last: its presence marks the state complete, and
                # its list of files and sizes lets resume verify the state before trusting it.
                write_json(staging / PROGRESS, {**progress, "saved_at": time.time(),
                                                FILES: file_sizes(staging)})
                if final.exists():  # same step saved again (e.g. epoch end == save_every)
                    shutil.rmtree(final)
                os.replace(staging, final)
        except BaseException as err:
            if accelerator.is_main_process:
                shutil.rmtree(staging, ignore_errors=True)
            if not isinstance(err, Exception):
                raise  # a second signal: stop now, the staging folder is gone
            previous = self.latest()
            doing = f"saving the checkpoint for step {step}"
            fix = (f"The previous checkpoint is intact: {previous or 'none yet'}. Free disk "
                   "space or point trainer.output_dir at a writable disk, then resume with "
                   "trainer.resume=auto.")
            found = disk_error(err, doing, fix)
            if found is None and not isinstance(err, OSError):
                raise
            raise found or RunnerError(f"{doing} failed: {err}. {fix}") from err
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
        saved = json.loads((path / PROGRESS).read_text())
        saved.pop(FILES, None)
        return saved

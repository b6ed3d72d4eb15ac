"""Checkpoints that survive crashes, and finding the run to resume.

A checkpoint is written into a hidden staging folder and renamed into place only when
complete (rename is atomic on one filesystem), so a crash mid-save leaves a staging folder
that is ignored and cleaned up, never a half checkpoint that resume would pick. Old
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

from runner.errors import RunnerError
from runner.files import write_json

log = logging.getLogger(__name__)

PREFIX = "step-"
STAGING = ".staging-"
PROGRESS = "progress.json"


class ResumeError(RunnerError):
    pass


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """A run directory's complete checkpoints (progress.json written), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / PROGRESS).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def saved_epoch(run_dir: Path) -> int:
    """Epochs completed at the run's latest complete checkpoint (0: none)."""
    found = complete_checkpoints(run_dir)
    return json.loads((found[-1] / PROGRESS).read_text())["epoch"] if found else 0


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
                write_json(staging / PROGRESS, {**progress, "saved_at": time.time()})
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

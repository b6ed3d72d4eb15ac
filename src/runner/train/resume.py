"""Finding the run to resume: this directory's checkpoints, or the newest unfinished run of
the same name, refused when its hyperparameters differ."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from runner.train.checkpoints import ResumeError, complete_checkpoints
from runner.train.run_file import RUN_FILE, read_run_file

log = logging.getLogger(__name__)


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

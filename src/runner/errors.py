"""User-facing errors: what is wrong, where, and how to fix it."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    key: str  # the config key, file or row at fault
    message: str  # what is wrong, with the bad value
    fix: str  # what to do about it

    def __str__(self) -> str:
        return f"{self.key}: {self.message}.\n     fix: {self.fix}"


class RunnerError(Exception):
    """An error caused by the user's input; shown without a traceback, exit code 2."""

    exit_code = 2


class ConfigError(RunnerError):
    """One or more problems found in the configuration, reported together."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = [f"  {i}. {p}" for i, p in enumerate(self.problems, 1)]
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"the configuration has {len(self.problems)} {noun}:\n" + "\n".join(lines))


class DataError(RunnerError):
    """The data does not fit the declared experiment (missing column, bad label, ...)."""


class ModelError(RunnerError):
    """The model cannot be built as declared (unreachable checkpoint, bad override, ...)."""


class FreezeError(RunnerError):
    """The freezing plan is unusable (nothing trainable, a pattern that matched nothing, ...)."""


class TrackingError(RunnerError):
    """The MLflow store or server cannot be used (unreachable, corrupt, read-only, ...)."""


class DiskError(RunnerError):
    """Writing the run's files failed: a full disk, a read-only one, a quota."""


# What the environment (not the program) does to a write, and what to do about it.
DISK_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
}
DISK_FIX = ("Free some space (or make it writable), or point trainer.output_dir at another "
            "disk, then run the same command again (trainer.resume=auto continues from the "
            "last checkpoint).")


def disk_error(err: BaseException, doing: str, fix: str) -> DiskError | None:
    """A DiskError for an OSError (anywhere in err's chain) a full or read-only disk
    caused; None when the failure is something else. Libraries that write (safetensors,
    torch) wrap the OSError or only keep its text, so the text is read too."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_ERRNOS:
            where = f" ({seen.filename})" if seen.filename else ""
            return DiskError(f"{doing} failed: {DISK_ERRNOS[seen.errno]}{where}. {fix}")
        text = str(seen)
        for code, what in DISK_ERRNOS.items():
            if os.strerror(code) in text:
                return DiskError(f"{doing} failed: {what} ({text.splitlines()[0][:300]}). {fix}")
        seen = seen.__cause__ or seen.__context__
    return None


def user_error(err: BaseException) -> RunnerError | None:
    """The message a user should see for err: a RunnerError as it is, an OSError a full or
    read-only disk caused as a DiskError; None for anything else (a bug: its traceback)."""
    if isinstance(err, RunnerError):
        return err
    return disk_error(err, "the run", DISK_FIX)


class Interrupted(RunnerError):
    """SIGINT / SIGTERM stopped the run (after saving a checkpoint when training)."""

    exit_code = 130


class Preempted(Interrupted):
    """SIGUSR1 / SIGUSR2 (a scheduler's preemption or time-limit warning): a checkpoint was
    saved; the run resumes when started again in the same directory (a requeued job)."""

    exit_code = 75  # EX_TEMPFAIL: try again

    def __init__(self, message: str, signum: int, handlers: dict):
        super().__init__(message)
        self.signum = signum
        self.handlers = handlers  # the signal handlers in place before training

    def forward(self) -> None:
        """Hand the signal on to the scheduler's own handler (submitit requeues the job and
        exits); without one, exit with EX_TEMPFAIL."""
        import signal
        import sys

        for signum in (self.signum, signal.SIGUSR2, signal.SIGUSR1):
            handler = self.handlers.get(signum)
            if callable(handler):
                handler(signum, None)
                return
        print(f"error: {self}", file=sys.stderr)
        sys.exit(self.exit_code)


class Pruned(RunnerError):
    """The Optuna pruner stopped this trial at an evaluation (a checkpoint was saved): the
    run ends KILLED, tagged runner.pruned, and the sweep goes on."""

    def __init__(self, step: int, metric: str, value: float):
        super().__init__(f"pruned by the sweep's pruner at step {step} ({metric}={value:.4g})")
        self.step = step

"""Stopping cleanly on a signal, from the store's creation to the final save.

One watch covers the whole run (`watching`, entered by runner.run): outside the training
loop a signal stops the run at once (an Interrupted / Preempted raised where the program
is, so run.json and MLflow record it); inside the loop (`stop_on_signals`) it only sets a
flag, the step finishes, a checkpoint is saved, then the run ends saying why. A second
signal always stops at once.

SIGINT / SIGTERM stop the run (Interrupted; continue with trainer.resume=auto).
SIGUSR1 / SIGUSR2 are a scheduler's preemption warning (Preempted; a requeued job in the
same directory resumes by itself).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.errors import Interrupted, Preempted

log = logging.getLogger(__name__)

PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)  # SLURM / submitit warn with these
WATCHED = (signal.SIGINT, signal.SIGTERM, *PREEMPTION_SIGNALS)


class Watch:
    """The signals received during one run, and what a signal does right now."""

    def __init__(self, previous: dict):
        self.received: list[int] = []
        self.previous = previous  # the handlers in place before the run (a scheduler's)
        self.deferring = False  # True inside the training loop: finish the step first
        self.phase = "before training started"

    def handler(self, signum, frame):
        first = not self.received
        self.received.append(signum)
        if first and self.deferring:
            log.warning("received %s: finishing the current step, then saving a checkpoint",
                        signal.Signals(signum).name)
            return
        raise self.error(signum, second=not first)

    def error(self, signum: int, second: bool = False) -> Interrupted:
        name = signal.Signals(signum).name
        if second:
            return Interrupted(f"stopped at once by a second signal ({name}), without saving "
                               "the current step. Continue from the last checkpoint with "
                               "trainer.resume=auto.")
        if signum in PREEMPTION_SIGNALS:
            return Preempted(f"preempted by {name} {self.phase}. Started again in the same "
                             "directory (a requeued job), the run goes on by itself.",
                             signum, self.previous)
        return Interrupted(f"stopped by {name} {self.phase}. Run the same command again "
                           "(trainer.resume=auto continues from a checkpoint if one was saved).")

    def check(self) -> None:
        """Raise for a signal whose exception was lost (raised inside a __del__ or caught by
        a library's `except Exception`): the run must not go on as if nothing happened."""
        if self.received:
            raise self.error(self.received[0])


_current: Watch | None = None


@contextmanager
def watching() -> Iterator[Watch]:
    """Watch SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 for as long as this lasts (nested uses share
    the outer watch); the previous handlers are put back at the end."""
    global _current
    if _current is not None:
        yield _current
        return
    watch = Watch({s: signal.getsignal(s) for s in WATCHED})
    for s in WATCHED:
        signal.signal(s, watch.handler)
    _current = watch
    try:
        yield watch
    finally:
        _current = None
        for s, h in watch.previous.items():
            signal.signal(s, h)


def phase(text: str) -> None:
    """Say what the run is doing, for the message a signal ends it with."""
    if _current is not None:
        _current.check()
        _current.phase = text


@contextmanager
def stop_on_signals() -> Iterator[tuple[list[int], dict]]:
    """Inside the training loop: a signal becomes a flag the loop checks between steps.
    Yields (signals received, the handlers the run replaced)."""
    with watching() as watch:
        watch.deferring = True
        try:
            yield watch.received, watch.previous
        finally:
            watch.deferring = False


def stopped_by(signum: int, handlers: dict, step: int, checkpoints: Path) -> Interrupted:
    """The error that ends a run stopped by `signum` after its checkpoint was saved."""
    name = signal.Signals(signum).name
    if signum in PREEMPTION_SIGNALS:
        return Preempted(
            f"preempted by {name} at step {step}; checkpoint saved in {checkpoints}. Started "
            "again in the same directory (a requeued job), the run resumes by itself.",
            signum, handlers)
    return Interrupted(f"stopped by {name} at step {step}; checkpoint saved in "
                       f"{checkpoints}. Continue with trainer.resume=auto.")

"""Stopping cleanly on a signal: finish the step, save a checkpoint, then say why.

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


@contextmanager
def stop_on_signals() -> Iterator[tuple[list[int], dict]]:
    """Turn SIGINT / SIGTERM (stop) and SIGUSR1 / SIGUSR2 (preemption) into a flag the loop
    checks between steps. Yields (signals received, the handlers they replaced)."""
    received: list[int] = []

    def handler(signum, frame):
        if received:  # a second signal: stop now
            raise KeyboardInterrupt
        received.append(signum)
        log.warning("received %s: finishing the current step, then saving a checkpoint",
                    signal.Signals(signum).name)

    watched = (signal.SIGINT, signal.SIGTERM, *PREEMPTION_SIGNALS)
    previous = {s: signal.signal(s, handler) for s in watched}
    try:
        yield received, previous
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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

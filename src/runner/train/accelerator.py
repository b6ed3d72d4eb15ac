"""One Accelerator per run, even when a sweep runs many runs in one process."""

from __future__ import annotations

from accelerate import Accelerator


def fresh_accelerator(**settings) -> Accelerator:
    """An Accelerator with this run's settings.

    accelerate keeps its state process-wide and refuses new settings (another mixed
    precision, say) once set, but the jobs of a sweep run one after another in one process.
    Resetting its training state lets each run start clean; the process group (held in
    PartialState) is kept. `_reset_state` is private API, hence this one place for it
    (tests/test_training.py shows the refusal it avoids).
    """
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(**settings)

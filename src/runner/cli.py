"""Shared command-line behaviour: user errors are printed plainly and exit non-zero."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from runner.errors import RunnerError


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def report_errors() -> Iterator[None]:
    """Print a RunnerError as `error: ...` and exit with its code.

    In a sweep the error is re-raised instead, so the other jobs still run and the
    sweep reports it as a failed job.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except (RunnerError, HydraException, OmegaConfBaseException) as err:
        if in_multirun():
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 2))

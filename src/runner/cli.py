"""Shared command-line behaviour: user errors are printed plainly and exit non-zero."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from runner.errors import Preempted, RunnerError


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
    except Preempted as err:
        err.forward()  # requeue through the scheduler's handler, or exit 75
    except (RunnerError, HydraException, OmegaConfBaseException) as err:
        if in_multirun():
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 2))


# Python objects config may name (Hydra instantiates `_target_`s, e.g. callbacks). runner's
# own config instantiates nothing else; anything beyond this list is refused.
ALLOWED_TARGETS = frozenset({"runner.track.sweep.SweepCallback"})
# `_target_` as a key (not inside another name such as max_target_length), and its value
_TARGET = re.compile(r"(?:^|[.{,\s+~])_target_['\"]?\s*[:=]\s*['\"]?([\w.]*)")


def refuse_unlisted_targets(argv: list[str]) -> None:
    """Exit 2 if a command-line override names a Python object outside ALLOWED_TARGETS."""
    named = [m.group(1) or "(empty)" for arg in argv for m in _TARGET.finditer(arg)]
    refused = [t for t in named if t not in ALLOWED_TARGETS]
    if refused:
        print(f"error: the override names Python objects runner does not allow: "
              f"{', '.join(refused)}. Config may only name: {', '.join(sorted(ALLOWED_TARGETS))}."
              " Remove the _target_ override.", file=sys.stderr)
        sys.exit(2)

"""Shared command-line behaviour: user errors are printed plainly and exit non-zero."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runner.errors import Interrupted, Preempted, RunnerError, user_error


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
    except KeyboardInterrupt:  # a signal before (or after) the run's own watch
        if in_multirun():
            raise
        print("error: interrupted (SIGINT)", file=sys.stderr)
        sys.exit(Interrupted.exit_code)
    except OSError as err:  # a full or read-only disk met outside runner's own writes
        found = user_error(err)
        if found is None or in_multirun():
            raise
        print(f"error: {found}", file=sys.stderr)
        sys.exit(found.exit_code)


# Command-line spellings runner reads as another override: OmegaConf's typed configs have
# no int-or-string field, so `trainer.batch_size=auto` (as the HF Trainer's users say it)
# stands for the bool key, with trainer.batch_size left as the largest batch tried.
SPELLINGS = {"trainer.batch_size=auto": "trainer.auto_batch_size=true"}


def respell(argv: list[str]) -> list[str]:
    """argv with each SPELLINGS key replaced by the override it stands for."""
    return [SPELLINGS.get(arg, arg) for arg in argv]


# Python objects config may name (Hydra instantiates `_target_`s, e.g. callbacks). runner's
# own config instantiates nothing else; anything beyond this list is refused.
ALLOWED_TARGETS = frozenset({"runner.track.sweep.SweepCallback"})
TARGET_KEY = "_target_"


def _as_choices(value: Any, wrap) -> Any:
    """A sweep's choices (choice(a,b)) each wrapped, or the one value wrapped."""
    from hydra.core.override_parser.types import ChoiceSweep

    return [wrap(v) for v in value.list] if isinstance(value, ChoiceSweep) else wrap(value)


def _targets_in(value: Any) -> Iterator[Any]:
    """The values of `_target_` keys anywhere inside an override's value (dicts, lists,
    sweeps such as choice(...))."""
    from hydra.core.override_parser.types import ChoiceSweep

    if isinstance(value, ChoiceSweep):
        value = value.list
    if isinstance(value, dict):
        for key, item in value.items():
            if key == TARGET_KEY:
                yield item
            else:
                yield from _targets_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _targets_in(item)


def named_targets(argv: list[str]) -> list[str]:
    """Every `_target_` the command-line overrides in `argv` set, in order.

    Each argument is read with Hydra's own override parser, so `+`, `++` and `~` forms,
    nested keys (hydra.callbacks.x._target_=...) and dict values ({_target_: ...}) are all
    seen as Hydra will see them. Arguments that are no override (--cfg job, -m) are skipped.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    named: list[str] = []
    for arg in argv:
        try:
            override = parser.parse_override(arg)
        except HydraException:
            continue  # a flag or its value; Hydra reports anything malformed itself
        value = override.value()
        if override.key_or_group.split(".")[-1] == TARGET_KEY:
            if value is not None:  # `~x._target_` without a value only deletes
                named.extend(_targets_in(_as_choices(value, lambda v: {TARGET_KEY: v})))
        else:
            named.extend(_targets_in(value))
    return [str(t) if t != "" else "(empty)" for t in named]


def refuse_unlisted_targets(argv: list[str]) -> None:
    """Exit 2 if a command-line override names a Python object outside ALLOWED_TARGETS."""
    refused = [t for t in named_targets(argv) if t not in ALLOWED_TARGETS]
    if refused:
        print(f"error: the override names Python objects runner does not allow: "
              f"{', '.join(refused)}. Config may only name: {', '.join(sorted(ALLOWED_TARGETS))}."
              " Remove the _target_ override.", file=sys.stderr)
        sys.exit(2)

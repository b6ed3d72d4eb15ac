"""Checks for the training schedule keys: layer-wise learning rates (trainer.head_lr,
trainer.layer_lr_decay) and the stages of freeze=gradual. Called by validate()."""

from __future__ import annotations

import re

from omegaconf import DictConfig

from runner.config.schema import FREEZE_STRATEGIES
from runner.errors import Problem

STAGE_STRATEGIES = tuple(s for s in FREEZE_STRATEGIES if s != "gradual")


def check_learning_rates(t: DictConfig, problems: list[Problem]) -> None:
    if t.head_lr is not None and t.head_lr <= 0:
        problems.append(Problem("trainer.head_lr", f"{t.head_lr} must be > 0",
                                "set trainer.head_lr to a value > 0, or null for trainer.lr"))
    decay = t.layer_lr_decay
    if decay is not None and not 0 < decay <= 1:
        problems.append(Problem("trainer.layer_lr_decay", f"{decay} must be in (0, 1]",
                                "set trainer.layer_lr_decay=0.8 (for example), or null for "
                                "one rate for the whole body"))


def check_stages(cfg: DictConfig, problems: list[Problem]) -> None:
    freeze = cfg.freeze
    if freeze.strategy != "gradual":
        if freeze.stages:
            problems.append(Problem("freeze.stages", f"only freeze=gradual reads stages, and "
                                    f"this run has freeze={freeze.strategy}",
                                    "add freeze=gradual, or drop freeze.stages"))
        return
    if freeze.every < 1:
        problems.append(Problem("freeze.every", f"{freeze.every} must be >= 1",
                                "set freeze.every=1 (one more block each epoch)"))
    previous = None
    for i, stage in enumerate(freeze.stages):
        _check_stage(f"freeze.stages[{i}]", stage, problems)
        _check_epoch(f"freeze.stages[{i}].at_epoch", stage.at_epoch, previous, cfg.trainer,
                     problems)
        previous = stage.at_epoch


def _check_stage(key: str, stage: DictConfig, problems: list[Problem]) -> None:
    if stage.strategy not in STAGE_STRATEGIES:
        problems.append(Problem(f"{key}.strategy", f"{stage.strategy!r} is not one of "
                                f"{', '.join(STAGE_STRATEGIES)}",
                                f"set {key}.strategy to one of them"))
    if stage.strategy in ("top_n", "bottom_n") and (stage.n is None or stage.n < 0):
        problems.append(Problem(f"{key}.n", f"strategy {stage.strategy} needs a number of "
                                f"blocks >= 0, got {stage.n}", f"add n: 2 (for example) to {key}"))
    if stage.strategy == "custom" and not (stage.trainable or stage.frozen):
        problems.append(Problem(f"{key}.trainable", "strategy custom needs at least one pattern",
                                f"add trainable: [<regex>] and/or frozen: [<regex>] to {key}"))
    for field in ("trainable", "frozen"):
        for pattern in stage[field]:
            try:
                re.compile(pattern)
            except re.error as err:
                problems.append(Problem(f"{key}.{field}", f"{pattern!r} is not a valid regular "
                                        f"expression ({err})", "fix the pattern"))


def _check_epoch(key: str, epoch: int, previous: int | None, t: DictConfig,
                 problems: list[Problem]) -> None:
    if previous is None and epoch != 0:
        problems.append(Problem(key, f"the first stage starts at epoch {epoch}: something must "
                                "train from the start", f"set {key}=0"))
    elif previous is not None and epoch == previous:
        problems.append(Problem(key, f"epoch {epoch} has two stages", "give each stage its "
                                "own epoch, or merge the two stages"))
    elif previous is not None and epoch < previous:
        problems.append(Problem(key, f"{epoch} comes after a stage at epoch {previous}: stages "
                                "must be sorted by at_epoch", "list the stages in epoch order"))
    if t.max_steps is None and epoch >= t.max_epochs:
        problems.append(Problem(key, f"epoch {epoch} is never reached: the run trains "
                                f"trainer.max_epochs={t.max_epochs} epochs (0 to "
                                f"{t.max_epochs - 1})", f"set {key} below {t.max_epochs}, or "
                                "raise trainer.max_epochs"))

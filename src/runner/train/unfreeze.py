"""Gradual unfreezing during training: at the first epoch of each stage its plan is
applied, and what the previous stage allowed is dropped where it no longer holds.

The optimizer holds, from the start, every tensor some stage trains (runner.train.setup):
AdamW keeps no state and takes no step for a tensor without a gradient, so a tensor that
is still frozen is left alone, and one that a stage unfreezes starts its moments (and its
bias correction) at its first step, while the tensors trained before keep theirs. The
param groups never change, so the scheduler's per-group base rates, fused AdamW and a
checkpoint's optimizer state all stay as they are.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from runner.model.freeze import apply_plan
from runner.model.stages import Stage, stage_at
from runner.train import body_cache, prefix_cache

log = logging.getLogger(__name__)


class Schedule:
    """The run's freezing stages and the one in force."""

    def __init__(self, cfg: DictConfig, stages: list[Stage], current: Stage, body_name: str):
        self.cfg, self.stages, self.current, self.body_name = cfg, stages, current, body_name

    @property
    def staged(self) -> bool:
        return len(self.stages) > 1

    def enter(self, parts, epoch: int) -> Stage | None:
        """Switch to the stage of `epoch` (0-based); the new stage, or None if unchanged."""
        if not self.staged:
            return None
        stage = stage_at(self.stages, epoch)
        if stage is self.current:
            return None
        self.current = stage
        model = parts.accelerator.unwrap_model(parts.model)
        apply_plan(model, stage.plan)
        if parts.replay is not None and body_cache.why_not(self.cfg, stage.plan,
                                                           self.body_name):
            parts.replay = None  # the body trains now: it runs in full from here on
            log.info("%s: the body trains, so the frozen-body feature cache is no longer "
                     "used", stage.label)
        parts.frozen_dropout = prefix_cache.frozen_dropout(
            self.cfg, model, stage.plan, prefix_cache.layout_of(self.cfg, model),
            self.body_name)
        log.info("%s: %s of %s parameters trainable", stage.label,
                 f"{stage.plan.trainable:,}", f"{stage.plan.total:,}")
        return stage

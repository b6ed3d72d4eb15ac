"""The stages of a run's freezing: one plan for most strategies; for freeze=gradual one plan
per stage (ULMFiT's gradual unfreezing), every one built and checked before training.

The default schedule trains the head alone, then one more block from the top (per stack)
every `freeze.every` epochs, then everything (the embeddings last); `freeze.stages` lists
the stages instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.config.families import Family, HeadSpec
from runner.errors import FreezeError
from runner.model.freeze import (
    FreezePlan,
    FreezeSettings,
    Layout,
    describe_parameters,
    make_plan,
    plan_for_model,
    settings_from_config,
)


@dataclass(frozen=True)
class Stage:
    index: int
    at_epoch: int  # the first epoch (0-based) this stage trains
    settings: FreezeSettings
    plan: FreezePlan

    @property
    def label(self) -> str:
        n = f" n={self.settings.n}" if self.settings.strategy in ("top_n", "bottom_n") else ""
        return f"stage {self.index} (from epoch {self.at_epoch}: {self.settings.strategy}{n})"


def stage_settings(freeze_cfg, blocks: int) -> list[tuple[int, FreezeSettings]]:
    """(first epoch, settings) per stage; `blocks` per stack, for the default schedule."""
    if freeze_cfg.strategy != "gradual":
        return [(0, settings_from_config(freeze_cfg))]
    if freeze_cfg.stages:
        return [(s.at_epoch, FreezeSettings(s.strategy, s.n, tuple(s.trainable),
                                            tuple(s.frozen))) for s in freeze_cfg.stages]
    every = freeze_cfg.every
    return [(0, FreezeSettings("head_only")),
            *((k * every, FreezeSettings("top_n", n=k)) for k in range(1, blocks + 1)),
            ((blocks + 1) * every, FreezeSettings("none"))]


def plan_stages(model, family: Family, spec: HeadSpec, freeze_cfg, adapters=None
                ) -> list[Stage]:
    """Every stage's plan, checked; a stage's error names the stage. `adapters`: those
    freeze=lora|dora|ia3 added (a single stage)."""
    if freeze_cfg.strategy != "gradual":
        plan = plan_for_model(model, family, spec, freeze_cfg, adapters)
        return [Stage(0, 0, settings_from_config(freeze_cfg, adapters), plan)]
    params = describe_parameters(model)
    layout = Layout.resolve(family, spec, (n for p in params for n in p.names))
    wanted = stage_settings(freeze_cfg, layout.blocks_per_stack)
    stages = []
    for index, (epoch, settings) in enumerate(wanted):
        try:
            plan = make_plan(params, layout, settings)
        except FreezeError as err:
            if len(wanted) == 1:
                raise
            raise FreezeError(f"freeze=gradual, stage {index} (at_epoch {epoch}, strategy "
                              f"{settings.strategy}): {err}") from None
        stages.append(Stage(index, epoch, settings, plan))
    return stages


def stage_at(stages: list[Stage], epoch: int) -> Stage:
    """The stage that trains the (0-based) epoch."""
    return [s for s in stages if s.at_epoch <= epoch][-1]


def trainable_in_any(stages: list[Stage]) -> set[str]:
    """Canonical names of the tensors some stage trains: what the optimizer holds."""
    return {name for s in stages for name in s.plan.trainable_names}

"""What a run is called, where it writes, and which settings define it (compared on resume)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.errors import ConfigError, Problem

log = logging.getLogger(__name__)

# Config keys that say where or how to record a run, not what is trained.
NOT_HYPERPARAMETERS = ("trainer.resume", "trainer.output_dir", "logger.", "inspect.")
GROUPS_IN_NAME = ("model", "head", "freeze")


@dataclass
class Where:
    name: str  # e.g. minilm-seqcls-head_only[head.num_labels=3]
    output_dir: Path
    search_roots: list[Path]
    choices: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    sweep_dir: Path | None = None  # set for the jobs of a multirun


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def resolved(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The flattened config that defines what is trained (compared on resume)."""
    return {k: v for k, v in flatten(resolved(cfg)).items()
            if not k.startswith(NOT_HYPERPARAMETERS)}


def run_name(choices: dict[str, str], overrides: list[str], cfg: DictConfig) -> str:
    base = "-".join(str(choices.get(g) or _fallback(cfg, g)) for g in GROUPS_IN_NAME)
    if choices.get("experiment"):
        base = f"{choices['experiment']}:{base}"
    skip = tuple(f"{g}=" for g in (*GROUPS_IN_NAME, "experiment")) + NOT_HYPERPARAMETERS
    extra = sorted(o.lstrip("+~") for o in overrides if not o.lstrip("+~").startswith(skip))
    return f"{base}[{','.join(extra)}]" if extra else base


def _fallback(cfg: DictConfig, group: str) -> str:
    return {"model": cfg.model.family, "head": cfg.head.task,
            "freeze": cfg.freeze.strategy}[group]


def locate(cfg: DictConfig) -> Where:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    cwd_outputs = Path.cwd() / "outputs"
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        job_dir = Path(hc.runtime.output_dir)
        choices = {k: v for k, v in hc.runtime.choices.items() if v is not None}
        overrides = list(hc.overrides.task)
        output_dir = Path(cfg.trainer.output_dir).resolve() if cfg.trainer.output_dir else job_dir
        sweep = Path(hc.sweep.dir).resolve() if hc.mode == RunMode.MULTIRUN else None
        return Where(run_name(choices, overrides, cfg), output_dir,
                     [job_dir.parent, cwd_outputs], choices, overrides, sweep)
    if not cfg.trainer.output_dir:
        raise ConfigError([Problem("trainer.output_dir", "is required when the runner is "
                                   "called outside `python -m runner`",
                                   "set trainer.output_dir=<directory>")])
    output_dir = Path(cfg.trainer.output_dir).resolve()
    return Where(run_name({}, [], cfg), output_dir, [output_dir.parent, cwd_outputs])

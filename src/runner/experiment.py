"""What a run is called, where it writes, what it shows and what it leaves behind."""

from __future__ import annotations

import logging
import os
import shutil
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


def settle_from_data(cfg: DictConfig, raw) -> None:
    """Record in the config what the data decided (label count and names)."""
    if raw.labels is None:
        return
    if cfg.head.num_labels is None:
        cfg.head.num_labels = raw.labels.num_labels
    if cfg.head.label_names is None and not raw.labels.regression:
        cfg.head.label_names = list(raw.labels.names)


def show_plan(cfg: DictConfig, model, plan) -> None:
    from runner.inspect import format_table, module_table, report

    log.info("model and freezing plan:\n%s",
             format_table(report(cfg, model, plan), module_table(model, plan, depth=2)))


def save_final_model(cfg: DictConfig, trainer, tokenizer, output_dir: Path) -> Path | None:
    """save_pretrained model + tokenizer, so transformers.pipeline can load the directory."""
    if not cfg.trainer.save_model:
        return None
    acc = trainer.accelerator
    target = Path(output_dir) / "model"
    staging = Path(output_dir) / f".model-{os.getpid()}.tmp"
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        model = acc.unwrap_model(trainer.model)
        model.save_pretrained(str(staging), safe_serialization=True,
                              state_dict=acc.get_state_dict(trainer.model))
        tokenizer.save_pretrained(str(staging))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    acc.wait_for_everyone()
    return target


def print_summary(metrics: dict[str, float], objective_name: str, model_dir: Path | None
                  ) -> None:
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())
                      if k.startswith("eval/"))
    print(f"final metrics: {shown}")
    value = metrics.get(objective_name)
    print(f"objective {objective_name} = {value:.4f}" if value is not None
          else f"objective {objective_name}: not measured")
    if model_dir is not None:
        print(f"model saved to {model_dir}")

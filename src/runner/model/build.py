"""Build exactly the declared model: family x head, pretrained or from config, plus overrides."""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import transformers
from omegaconf import DictConfig, OmegaConf
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from runner.config.families import (
    Family,
    HeadSpec,
    family_of,
    head_spec,
    is_local,
    pooled_model_type,
    pooling_of,
)
from runner.config.tasks import TASKS
from runner.data.labels import Labels
from runner.errors import ModelError
from runner.files import unreadable_safetensors
from runner.model import pooled  # noqa: F401 (registers runner's pooled classes)

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    transformers.set_seed(seed)


# ----------------------------------------------------------------------------- checkpoints


def _hub_reachable() -> bool:
    """A quick look for the hub, so offline machines fail at once rather than after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def check_local_checkpoint(path: Path, family: Family) -> bool:
    """Read and vet a checkpoint directory's config.json before transformers touches it;
    True when it holds weights."""
    if not path.is_dir():
        raise ModelError(
            f"model.checkpoint={str(path)!r} is not a directory. Point it at a directory "
            "holding config.json and the weights (as written by save_pretrained)."
        )
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"model.checkpoint={str(path)!r} has no config.json. Point it at a directory "
            "written by save_pretrained (config.json + model.safetensors)."
        ) from None
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {config_file}: {err}. Check the file's permissions "
                         "and that it is valid JSON.") from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_file} holds a JSON {type(config).__name__}, not an object "
                         "of config values. Point model.checkpoint at a directory written "
                         "by save_pretrained.")
    if "auto_map" in config or any(path.glob("*.py")):
        raise ModelError(
            f"model.checkpoint={str(path)!r} ships custom model code (auto_map / *.py). runner "
            "never executes code from checkpoints (trust_remote_code is off). Use a checkpoint "
            "of a standard family instead."
        )
    model_type = config.get("model_type")
    # A model runner saved with its own pooling is still of this family.
    if model_type not in (family.model_type, pooled_model_type(family.name)):
        raise ModelError(
            f"model.checkpoint={str(path)!r} is a {model_type!r} model, but model.family="
            f"{family.name!r} expects {family.model_type!r}. Choose the model= preset that "
            "matches the checkpoint, or set model.family accordingly."
        )
    for weights in sorted(path.glob("*.safetensors")):
        why = unreadable_safetensors(weights)
        if why:
            raise ModelError(
                f"model.checkpoint={str(path)!r}: {weights.name} cannot be read ({why}); it is "
                "truncated or damaged. Copy or save the checkpoint again (save_pretrained), or "
                "point model.checkpoint at an intact one.")
    return any(path.glob("*.safetensors")) or any(path.glob("*.bin"))


@dataclass(frozen=True)
class Checkpoint:
    """A vetted model.checkpoint: where to load from, and whether that needs no network."""

    path: str
    available: bool  # a local directory, or a hub id already in the local cache


def resolve_checkpoint(cfg: DictConfig, *, need_weights: bool) -> Checkpoint:
    """Vet model.checkpoint once per run; build_config and build_model take the result.

    Local directories are vetted; hub ids are looked up in the local cache first, and only
    then on the hub. An unreachable hub is a clear error when weights are needed.
    """
    checkpoint = str(cfg.model.checkpoint)
    if is_local(checkpoint):
        path = Path(checkpoint).expanduser().resolve()
        has_weights = check_local_checkpoint(path, family_of(cfg))
        if need_weights and not has_weights:
            raise ModelError(
                f"model.checkpoint={str(path)!r} has no weights (*.safetensors). Save the model "
                "with save_pretrained, or use model.init=scratch to build it from its config."
            )
        return Checkpoint(str(path), True)
    try:
        AutoConfig.from_pretrained(checkpoint, local_files_only=True)
        return Checkpoint(checkpoint, True)
    except (OSError, ValueError):
        pass
    if need_weights and not _hub_reachable():
        raise ModelError(
            f"cannot load model.checkpoint={checkpoint!r}: the Hugging Face Hub is not reachable "
            "from this machine and the checkpoint is not in the local cache. Either download it "
            f"where there is network (`huggingface-cli download {checkpoint} --local-dir DIR`) and "
            "set model.checkpoint=DIR, or train from scratch with model.init=scratch, or use "
            "model=minilm (a pretrained BERT that works offline)."
        )
    return Checkpoint(checkpoint, False)


def _resolved(cfg: DictConfig, checkpoint: Checkpoint | None) -> Checkpoint:
    """The run's vetted checkpoint, or (for callers outside a run) one vetted now."""
    if checkpoint is not None:
        return checkpoint
    return resolve_checkpoint(cfg, need_weights=cfg.model.init == "pretrained")


# ----------------------------------------------------------------------------------- config


def _check_override_keys(config: PretrainedConfig, overrides: dict[str, Any]) -> None:
    known = set(config.to_dict()) | set(getattr(config, "attribute_map", {}))
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        names = ", ".join(sorted(k for k in config.to_dict() if not k.startswith("_"))[:40])
        raise ModelError(
            f"model.config_overrides: {', '.join(unknown)} "
            f"{'is not a key' if len(unknown) == 1 else 'are not keys'} of "
            f"{type(config).__name__}. Check the spelling; known keys include: {names}"
        )


def head_config_kwargs(cfg: DictConfig, labels: Labels | None) -> dict[str, Any]:
    """Config values the head needs (label count and names, decoder flags)."""
    spec = TASKS[cfg.head.task]
    kwargs: dict[str, Any] = dict(head_spec(cfg).config)
    if not spec.labels:
        return kwargs
    if labels is None:  # no data (inspect): the configured count, or 2
        n = cfg.head.num_labels or 2
        names = list(cfg.head.label_names or [f"LABEL_{i}" for i in range(n)])
        labels = Labels(names, regression=bool(cfg.head.regression))
    kwargs["num_labels"] = labels.num_labels
    if labels.regression:
        kwargs["problem_type"] = "regression"
        return kwargs
    kwargs["id2label"] = dict(enumerate(labels.names))
    kwargs["label2id"] = {name: i for i, name in enumerate(labels.names)}
    if spec.problem_type:
        kwargs["problem_type"] = spec.problem_type
    return kwargs


def _base_config(cfg: DictConfig, checkpoint: Checkpoint, family: Family
                 ) -> tuple[PretrainedConfig, dict[str, Any]]:
    """The config overrides apply to: the checkpoint's, or the family default offline."""
    if checkpoint.available or cfg.model.init == "pretrained":
        base = AutoConfig.from_pretrained(checkpoint.path, local_files_only=checkpoint.available,
                                          trust_remote_code=False)
        return base, base.to_dict()
    log.info("%s is not available locally: building %s from the family default config",
             checkpoint.path, family.name)
    return (AutoConfig.for_model(family.model_type, **family.default_config),
            dict(family.default_config))


def build_config(
    cfg: DictConfig, labels: Labels | None = None, extra: dict[str, Any] | None = None,
    checkpoint: Checkpoint | None = None,
) -> PretrainedConfig:
    """The transformers config: the checkpoint's (or the family default) + overrides + head.

    `extra` carries values found while preparing data (a trained tokenizer's vocab size,
    GPT-2's pad token id); `checkpoint` is the run's vetted checkpoint.
    """
    family = family_of(cfg)
    checkpoint = _resolved(cfg, checkpoint)
    overrides = OmegaConf.to_container(cfg.model.config_overrides, resolve=True) or {}
    base, base_values = _base_config(cfg, checkpoint, family)
    _check_override_keys(base, overrides)
    values = {**base_values, **overrides, **head_config_kwargs(cfg, labels), **(extra or {})}
    for key in ("model_type", "transformers_version", "architectures", "_name_or_path",
                "pooling"):
        values.pop(key, None)
    model_type = family.model_type
    if uses_pooled_class(cfg):
        model_type, values["pooling"] = pooled_model_type(family.name), pooling_of(cfg)[0]
    config = AutoConfig.for_model(model_type, **values)
    if not is_local(checkpoint.path):
        # validate() checked the sizes against a local config.json or the family default;
        # a hub checkpoint's own config.json (cached or downloaded) is only read here.
        _check_config_arithmetic(config, family)
    return config


def uses_pooled_class(cfg: DictConfig) -> bool:
    """True when head.pooling needs runner's pooled class (not the family's own)."""
    spec = head_spec(cfg)
    return bool(spec.pooled_class) and spec.model_class == spec.pooled_class


def _check_config_arithmetic(config: PretrainedConfig, family: Family) -> None:
    hidden = getattr(config, family.hidden_key)
    heads = getattr(config, family.heads_key)
    if family.heads_must_divide_hidden and hidden % heads:
        raise ModelError(
            f"model.config_overrides: the hidden size {hidden} is not divisible by the number "
            f"of attention heads {heads}. Use a head count that divides {hidden}."
        )


# ------------------------------------------------------------------------------------ model


def build_model(cfg: DictConfig, config: PretrainedConfig,
                checkpoint: Checkpoint | None = None) -> PreTrainedModel:
    """Instantiate the task model: pretrained weights or fresh ones; never remote code."""
    spec = head_spec(cfg)
    auto_class = getattr(transformers, TASKS[cfg.head.task].auto_class)
    if cfg.model.init == "pretrained":
        checkpoint = _resolved(cfg, checkpoint).path
        try:
            # A head of another size (e.g. num_labels) is re-initialised; any other size
            # mismatch is refused below.
            model, info = auto_class.from_pretrained(
                checkpoint, config=config, trust_remote_code=False, output_loading_info=True,
                ignore_mismatched_sizes=True,
            )
        except OSError as err:
            raise ModelError(f"cannot load weights from model.checkpoint={checkpoint!r}: {err}"
                             ) from None
        except pickle.UnpicklingError as err:
            raise ModelError(
                f"refusing the weights in model.checkpoint={checkpoint!r}: they are a pickle "
                f"holding more than plain tensors ({str(err).splitlines()[0]}); loading it "
                "could run code. Use safetensors weights (save_pretrained writes them).") from None
        _report_loading(model, info, spec)
    else:
        model = auto_class.from_config(config, trust_remote_code=False)
    if type(model).__name__ != spec.model_class:
        raise ModelError(
            f"{TASKS[cfg.head.task].auto_class} built {type(model).__name__}, expected "
            f"{spec.model_class}: the checkpoint does not match model.family={cfg.model.family}"
        )
    return model


def _report_loading(model: PreTrainedModel, info: dict[str, Any], spec: HeadSpec) -> None:
    head_prefixes = tuple(f"{m}." for m in spec.head_modules)
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(m[0] if isinstance(m, tuple) else str(m)
                        for m in info.get("mismatched_keys") or [])
    body_mismatched = [k for k in mismatched if not k.startswith(head_prefixes)]
    if body_mismatched:
        raise ModelError(
            "the checkpoint's weights do not fit the configured shapes: "
            + ", ".join(body_mismatched[:10])
            + ". Use the checkpoint's own architecture, or model.init=scratch."
        )
    if missing or mismatched:
        log.info("newly initialised head weights (not in the checkpoint, or another size): %s",
                 ", ".join(missing + mismatched))
    body_missing = [k for k in missing if not k.startswith(head_prefixes)]
    if body_missing:
        log.warning("%d body weights were not in the checkpoint and start random: %s",
                    len(body_missing), ", ".join(body_missing[:10]))

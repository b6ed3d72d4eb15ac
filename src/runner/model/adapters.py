"""Adapters (freeze=lora | dora | ia3) through peft, as part of the freeze plan.

peft's `inject_adapter_in_model` adds the adapter layers in place: the model keeps its
class, its forward and its parameter names (a target's own weight becomes
`<module>.base_layer.weight`, beside `<module>.lora_A.default.weight`, ...). The task head
is not wrapped (no peft `modules_to_save` copy): it trains as the plan says, one tensor
counted once. When the run ends the adapters are merged into the base weights (a plain
transformers model), or saved in peft's own format next to a reference to the base.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from runner.config.adapters import LOW_RANK, default_targets
from runner.config.families import Family, HeadSpec
from runner.config.schema import ADAPTER_STRATEGIES
from runner.errors import FreezeError

log = logging.getLogger(__name__)

ADAPTER_NAME = "default"  # peft's name for a model's one adapter


@dataclass(frozen=True)
class Adapters:
    """What was added: the settings, the adapted modules and each adapter tensor's rule."""

    method: str
    settings: dict[str, Any]  # the peft config values runner chose (recorded, shown)
    modules: tuple[str, ...]  # adapted module names
    rules: dict[str, str]  # adapter tensor name -> the rule that added it
    parameters: int  # adapter parameters in all

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, **self.settings, "modules": len(self.modules),
                "tensors": len(self.rules), "parameters": self.parameters}


def _peft_config(method: str, freeze_cfg, targets: list[str], feedforward: list[str],
                 fan_in_fan_out: bool):
    from peft import IA3Config, LoraConfig

    if method == "ia3":
        return IA3Config(target_modules=targets, feedforward_modules=feedforward,
                         fan_in_fan_out=fan_in_fan_out)
    return LoraConfig(r=int(freeze_cfg.r), lora_alpha=float(freeze_cfg.alpha),
                      lora_dropout=float(freeze_cfg.dropout), target_modules=targets,
                      use_dora=method == "dora", fan_in_fan_out=fan_in_fan_out)


def _matches(name: str, target: str) -> bool:
    """peft's rule for a list of target names: the module's name or its last dotted parts."""
    return name == target or name.endswith("." + target)


def _check_targets(model: torch.nn.Module, spec: HeadSpec, targets: list[str]) -> None:
    """Every target names modules of the body (not the head, which trains fully)."""
    names = [n for n, _ in model.named_modules() if n]
    in_head = [n for n in names if any(_matches(n, h) or n.startswith(h + ".")
                                       for h in spec.head_modules)]
    for target in targets:
        found = [n for n in names if _matches(n, target)]
        if not found:
            leaves = sorted({n.rpartition(".")[2] for n, m in model.named_modules()
                             if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"})
            raise FreezeError(
                f"freeze.targets: {target!r} names no module of {type(model).__name__}. Its "
                f"linear layers are named: {', '.join(leaves)} (a target matches a module's "
                "full name or its last dotted parts, e.g. 'query' or 'attention.self.query'); "
                "list the modules with `python -m runner.inspect freeze=none inspect.depth=8`.")
        head = [n for n in found if n in in_head]
        if head:
            raise FreezeError(
                f"freeze.targets: {target!r} matches the task head ({', '.join(head)}), which "
                "trains fully beside the adapters (and adapters always sit in the body, so "
                "the frozen-body feature cache never stands in for it). Name body modules "
                "only, or set freeze.targets=null for the family's default.")


def add_adapters(model: torch.nn.Module, family: Family, spec: HeadSpec, freeze_cfg
                 ) -> Adapters | None:
    """Inject the freeze strategy's adapters into `model` (in place); None for strategies
    without adapters. Deterministic for a seed (peft initialises them from torch's RNG)."""
    method = freeze_cfg.strategy
    if method not in ADAPTER_STRATEGIES:
        return None
    from peft import inject_adapter_in_model

    targets, feedforward = default_targets(family.name, method)
    if freeze_cfg.targets is not None:
        targets = list(freeze_cfg.targets)
        feedforward = list(freeze_cfg.get("feedforward") or [])
    elif freeze_cfg.get("feedforward") is not None:
        feedforward = list(freeze_cfg.feedforward)
    _check_targets(model, spec, targets)
    # GPT-2's Conv1D stores its weight transposed; peft must know (it warns and guesses).
    fan_in_fan_out = family.name == "gpt2"
    config = _peft_config(method, freeze_cfg, targets, feedforward, fan_in_fan_out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    except (ValueError, TypeError, NotImplementedError) as err:
        raise FreezeError(f"freeze={method} cannot adapt {type(model).__name__} with "
                          f"freeze.targets={targets}: peft says: {err}") from None
    settings = {"targets": targets}
    if method in LOW_RANK:
        settings |= {"r": int(freeze_cfg.r), "alpha": float(freeze_cfg.alpha),
                     "dropout": float(freeze_cfg.dropout)}
    else:
        settings["feedforward"] = feedforward
    settings["merge"] = bool(freeze_cfg.merge)
    modules, rules = _adapter_tensors(model, method, settings)
    sizes = dict(model.named_parameters())
    return Adapters(method, settings, modules, rules, sum(sizes[n].numel() for n in rules))


def _adapter_tensors(model: torch.nn.Module, method: str, settings: dict[str, Any]
                     ) -> tuple[tuple[str, ...], dict[str, str]]:
    """The adapted modules and, for each adapter tensor, its rule: every parameter of a
    peft layer that is not its base layer's."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    how = (f"r={settings['r']}, alpha={settings['alpha']:g}" if method in LOW_RANK
           else "scaling vector")
    modules, rules = [], {}
    for name, module in model.named_modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        modules.append(name)
        base = {id(p) for p in module.get_base_layer().parameters()}
        target = next(t for t in settings["targets"] if _matches(name, t))
        for pname, p in module.named_parameters():
            if id(p) not in base:
                rules[f"{name}.{pname}"] = f"{method} adapter ({how}) on target {target!r}"
    return tuple(modules), rules


def remove_adapters(model: torch.nn.Module, merge: bool = True) -> None:
    """Merge every adapter into its base layer (or drop it, merge=False) and put the base
    layer back in its place: the model is a plain transformers model again (its own
    parameter names; merged, the same outputs)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            if merge:
                module.merge(adapter_names=[ADAPTER_NAME])
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child,
                    module.get_base_layer())
    if hasattr(model, "peft_config"):  # nothing of peft is left in the model
        del model.peft_config


def save_adapter(model: torch.nn.Module, trainable_other: list[str], directory: Path,
                 base: str) -> None:
    """peft's own format in `directory`: adapter_config.json (the base model named by
    `base`) and adapter_model.safetensors with the adapter tensors and, as peft's
    `modules_to_save`, every other module that trained (the head), so
    `PeftModel.from_pretrained(base_model, directory)` restores the trained model."""
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    config = model.peft_config[ADAPTER_NAME]
    owners = sorted({n.rpartition(".")[0] for n in trainable_other})
    config.modules_to_save = owners or None
    config.base_model_name_or_path = base
    config.save_pretrained(str(directory))
    prefix = "base_model.model."  # where PeftModel keeps the model it wraps
    state = model.state_dict()
    tensors = {prefix + k: v for k, v in get_peft_model_state_dict(
        model, state_dict=state, adapter_name=ADAPTER_NAME, save_embedding_layers=False).items()}
    for owner in owners:  # the whole module, as peft saves a module_to_save
        tensors |= {prefix + k: v for k, v in state.items() if k.startswith(owner + ".")}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
              str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})

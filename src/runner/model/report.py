"""The parameter report: the model class, key config values, the module tree with
per-module parameter counts and the trainable split, as a table or a JSON document."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from runner.config.families import family_of, head_spec, pooling_of
from runner.config.pooling import DESCRIPTIONS
from runner.config.validate import validate

log = logging.getLogger(__name__)

# Config values worth a glance, by their common names (transformers maps family-specific
# names such as n_embd or d_model onto these).
KEY_CONFIG = (
    "hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "num_labels",
    "vocab_size", "max_position_embeddings",
)


def key_config(config) -> dict[str, Any]:
    values = {}
    for key in KEY_CONFIG:
        try:
            values[key] = getattr(config, key)
        except AttributeError:
            continue
    if getattr(config, "is_encoder_decoder", False):
        values["num_decoder_layers"] = getattr(config, "num_decoder_layers", None)
    return values


def module_table(model, plan, depth: int) -> list[dict[str, Any]]:
    """Modules down to `depth` levels in tree order, with their parameter counts."""
    counts = plan.module_counts(depth)
    rows = []
    for name, module in model.named_modules():
        level = name.count(".") + 1 if name else 0
        if level > depth:
            continue
        total, trainable = counts.get(name, (0, 0))
        rows.append({"name": name or "(model)", "level": level, "class": type(module).__name__,
                     "total": total, "trainable": trainable, "frozen": total - trainable})
    return rows


def schedule_report(cfg: DictConfig, model, stages) -> dict[str, Any]:
    """freeze=gradual's stages (more than one) and the layer-wise learning-rate groups."""
    from runner.model.lr_groups import groups_for
    from runner.model.stages import trainable_in_any

    doc: dict[str, Any] = {}
    if stages and len(stages) > 1:
        doc["stages"] = [{"stage": s.index, "at_epoch": s.at_epoch, "strategy": s.settings.strategy,
                          "n": s.settings.n, "trainable": s.plan.trainable} for s in stages]
    groups = groups_for(cfg, model, trainable_in_any(stages) if stages else
                        {n for n, p in model.named_parameters() if p.requires_grad})
    if groups:
        doc["lr_groups"] = [{"name": g.name, "lr": g.lr, "params": g.numel} for g in groups]
    return doc


def report(cfg: DictConfig, model, plan, stages=None) -> dict[str, Any]:
    pooling, why = pooling_of(cfg)
    return {
        "model_class": type(model).__name__,
        "checkpoint": str(cfg.model.checkpoint),
        "init": cfg.model.init,
        "key_config": key_config(model.config),
        # What a sequence classifier reads (None: the head has no choice), and why.
        "pooling": pooling or None,
        "pooling_reason": why if pooling else None,
        "config": model.config.to_dict(),
        "freeze": {"strategy": plan.strategy, "notes": plan.notes,
                   **({"adapters": plan.adapters} if plan.adapters else {})},
        "params": {
            "total": plan.total,
            "trainable": plan.trainable,
            "frozen": plan.frozen,
            "trainable_fraction": plan.trainable_fraction,
        },
        "modules": [
            {k: row[k] for k in ("name", "class", "total", "trainable", "frozen")}
            for row in module_table(model, plan, cfg.inspect.depth)
        ],
        "trainable_parameter_names": plan.trainable_names,
        **schedule_report(cfg, model, stages),
    }


def format_table(doc: dict[str, Any], depth_rows: list[dict[str, Any]]) -> str:
    p = doc["params"]
    lines = [
        f"model      {doc['model_class']}  (checkpoint {doc['checkpoint']}, init={doc['init']})",
        "config     " + "  ".join(f"{k}={v}" for k, v in doc["key_config"].items()),
        f"freeze     {doc['freeze']['strategy']}",
    ]
    if doc["freeze"].get("adapters"):
        lines.append("adapters   " + "  ".join(f"{k}={v}" for k, v in
                                              doc["freeze"]["adapters"].items()))
    if doc.get("pooling"):
        lines.append(f"pooling    {doc['pooling']}: {DESCRIPTIONS[doc['pooling']]} "
                     f"({doc['pooling_reason']})")
    lines.append("")
    width = max(len("  " * r["level"] + r["name"].rpartition(".")[2]) for r in depth_rows) + 2
    cls = max(34, *(len(r["class"]) + 1 for r in depth_rows))
    lines.append(f"{'module':<{width}}{'class':<{cls}}{'total':>14}{'trainable':>14}"
                 f"{'frozen':>14}")
    for r in depth_rows:
        label = "  " * r["level"] + (r["name"].rpartition(".")[2] if r["level"] else r["name"])
        lines.append(f"{label:<{width}}{r['class']:<{cls}}{r['total']:>14,}"
                     f"{r['trainable']:>14,}{r['frozen']:>14,}")
    lines += [
        "",
        f"total {p['total']:,}   trainable {p['trainable']:,} ({p['trainable_fraction']:.4%})   "
        f"frozen {p['frozen']:,}",
    ]
    lines += [f"note: {n}" for n in doc["freeze"]["notes"]]
    for s in doc.get("stages", []):
        n = "" if s["n"] is None else f" n={s['n']}"
        lines.append(f"stage {s['stage']}  from epoch {s['at_epoch']}: {s['strategy']}{n}, "
                     f"{s['trainable']:,} trainable")
    if doc.get("lr_groups"):
        lines.append("learning rates  " + "  ".join(
            f"{g['name']}={g['lr']:.3g} ({g['params']:,})" for g in doc["lr_groups"]))
    return "\n".join(lines)


def inspect_model(cfg: DictConfig) -> dict[str, Any]:
    validate(cfg)
    from runner.model.adapters import add_adapters
    from runner.model.build import build_config, build_model, resolve_checkpoint, seed_everything
    from runner.model.stages import plan_stages

    seed_everything(cfg.trainer.seed)
    checkpoint = resolve_checkpoint(cfg, need_weights=cfg.model.init == "pretrained")
    model = build_model(cfg, build_config(cfg, checkpoint=checkpoint), checkpoint)
    adapters = add_adapters(model, family_of(cfg), head_spec(cfg), cfg.freeze)
    stages = plan_stages(model, family_of(cfg), head_spec(cfg), cfg.freeze, adapters)
    plan = stages[0].plan
    doc = report(cfg, model, plan, stages)
    doc["_rows"] = module_table(model, plan, cfg.inspect.depth)
    return doc


def show_plan(cfg: DictConfig, model, plan, stages=None) -> None:
    log.info("model and freezing plan:\n%s",
             format_table(report(cfg, model, plan, stages), module_table(model, plan, depth=2)))

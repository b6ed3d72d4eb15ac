"""Adapter settings (freeze=lora | dora | ia3): their defaults from the family table and
their checks, decided from the config alone (no peft or torch import here)."""

from __future__ import annotations

from typing import Any

from runner.config.families import FAMILIES
from runner.config.schema import ADAPTER_STRATEGIES
from runner.errors import Problem

LOW_RANK = ("lora", "dora")  # the methods with a rank, a scale and a dropout


def default_targets(family: str, method: str) -> tuple[list[str], list[str]]:
    """(targets, feedforward targets) from the family table."""
    fam = FAMILIES[family]
    if method == "ia3":
        return list(fam.ia3_targets), list(fam.ia3_feedforward)
    return list(fam.lora_targets), []


def fill_targets(cfg: Any) -> None:
    """freeze.targets (and ia3's feedforward) made concrete, so the run records them."""
    freeze = cfg.freeze
    if freeze.strategy not in ADAPTER_STRATEGIES:
        return
    targets, feedforward = default_targets(cfg.model.family, freeze.strategy)
    if freeze.targets is None:
        freeze.targets = targets
        if freeze.strategy == "ia3" and freeze.feedforward is None:
            freeze.feedforward = feedforward
    if freeze.strategy == "ia3" and freeze.feedforward is None:
        freeze.feedforward = []  # own targets: all scaled on their output unless named


def check(cfg: Any, problems: list[Problem]) -> None:
    """Every problem with the adapter keys, or with adapter keys set for another strategy."""
    freeze = cfg.freeze
    method = freeze.strategy
    keys = ("r", "alpha", "dropout", "targets", "feedforward", "merge")
    if method not in ADAPTER_STRATEGIES:
        for key in keys:
            if freeze.get(key) is not None:
                problems.append(Problem(
                    f"freeze.{key}", f"set to {freeze[key]!r}, but freeze={method} adds no "
                    "adapters", f"use freeze=lora|dora|ia3, or drop freeze.{key}"))
        return
    if method in LOW_RANK:
        _low_rank(freeze, problems)
    else:
        for key in ("r", "alpha", "dropout"):
            if freeze.get(key) is not None:
                problems.append(Problem(
                    f"freeze.{key}", f"set to {freeze[key]!r}, but IA3 learns scaling vectors "
                    "and has no rank, scale or dropout", f"drop freeze.{key}, or use freeze=lora"))
    targets = freeze.targets
    if targets is not None and not (targets and all(t.strip() for t in targets)):
        problems.append(Problem(
            "freeze.targets", f"{list(targets)!r} names no module",
            "name modules, e.g. freeze.targets=[query,value], or set freeze.targets=null "
            "for the family's default"))
    if method == "ia3" and freeze.feedforward:
        targets = (freeze.targets if freeze.targets is not None
                   else default_targets(cfg.model.family, method)[0]
                   if cfg.model.family in FAMILIES else [])
        extra = [f for f in freeze.feedforward if f not in targets]
        if extra:
            problems.append(Problem(
                "freeze.feedforward", f"{extra} are not among freeze.targets {list(targets)}",
                "feed-forward modules are a subset of the targets: add them to freeze.targets"))
    if freeze.merge is None:
        problems.append(Problem("freeze.merge", "must be true or false",
                                "set freeze.merge=true (merge when saving) or false"))


def _low_rank(freeze: Any, problems: list[Problem]) -> None:
    if freeze.r is None or freeze.r <= 0:
        problems.append(Problem("freeze.r", f"{freeze.r!r} must be a rank > 0",
                                "set freeze.r to a positive integer, e.g. freeze.r=8"))
    if freeze.alpha is None or freeze.alpha <= 0:
        problems.append(Problem("freeze.alpha", f"{freeze.alpha!r} must be > 0",
                                "set freeze.alpha > 0, e.g. freeze.alpha=16 (twice the rank)"))
    if freeze.dropout is None or not 0 <= freeze.dropout < 1:
        problems.append(Problem("freeze.dropout", f"{freeze.dropout!r} must be in [0, 1)",
                                "set freeze.dropout between 0 and 1, e.g. 0.05"))

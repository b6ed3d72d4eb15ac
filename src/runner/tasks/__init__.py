"""Tasks: one module per head (roles, preprocessing, collator, evaluation, metrics)."""

from __future__ import annotations

from importlib import import_module

from runner.config.tasks import TASKS


def task_class(name: str):
    """The Task subclass the registry names for a head."""
    module, _, cls = TASKS[name].implementation.partition(":")
    return getattr(import_module(module), cls)


def task_for(cfg, tokenizer, labels):
    return task_class(cfg.head.task)(cfg, tokenizer, labels)

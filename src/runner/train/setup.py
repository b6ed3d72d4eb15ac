"""Building what a run trains with: the accelerator, the loaders, the optimizer and its
schedule, the frozen-body cache and the checkpointer. The loop (runner.train.loop) only
runs them."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from transformers import get_scheduler

from runner.distributed import use_cpu
from runner.tasks.base import Features, Task
from runner.train import body_cache, prefix_cache
from runner.train.accelerator import fresh_accelerator
from runner.train.batching import TrainBatches, eval_batches
from runner.train.checkpoints import Checkpointer

log = logging.getLogger(__name__)


@dataclass
class TrainingParts:
    """Everything the loop runs, built once per run by `build_training`."""

    accelerator: Accelerator
    model: torch.nn.Module  # prepared by accelerate (wrapped when there are several processes)
    optimizer: Any
    scheduler: Any
    train_loader: DataLoader
    train_batches: TrainBatches  # the train loader's batch sampler: use_epoch per epoch
    eval_loader: DataLoader
    body: torch.nn.Module  # the base model inside the task model (replay stands in for it)
    # The frozen body's or the frozen prefix's stand-in; None: the model runs in full.
    replay: body_cache.Replay | prefix_cache.PrefixReplay | None
    frozen_dropout: list[torch.nn.Module]  # run in eval mode with the frozen embeddings
    checkpointer: Checkpointer
    total_steps: int  # optimizer steps in the whole run
    max_epochs: int  # epochs the loop may start (enough for total_steps under max_steps)


def build_training(cfg: DictConfig, model: torch.nn.Module, task: Task, features: Features,
                   plan, body_name: str, output_dir: Path) -> TrainingParts:
    """Build the run's training parts. The order matters: the feature cache runs the bare
    body before accelerate prepares (and, with several processes, wraps) the model."""
    t = cfg.trainer
    acc = fresh_accelerator(mixed_precision=t.mixed_precision,
                            gradient_accumulation_steps=t.grad_accum, cpu=use_cpu(t.cpu))
    collate = task.collator(model)
    lengths = {split: _lengths(getattr(features, split)) for split in ("train", "validation")}
    body = body_of(model, body_name)  # before accelerate wraps the model
    replay = body_cache_replay(cfg, plan, model, body_name, task, features, lengths, acc)
    if replay is None:
        replay = prefix_cache.prepare(
            cfg, plan, model, body_name,
            _cache_loaders(features, collate, lengths, t.eval_batch_size), acc, output_dir,
            task.tokenizer.pad_token_id)
    frozen_dropout = prefix_cache.frozen_dropout(cfg, model, plan,
                                                 prefix_cache.layout_of(cfg, model), body_name)
    train_batches = TrainBatches(lengths["train"], t.batch_size, t.seed, t.group_by_length)
    train_loader = DataLoader(features.train, batch_sampler=train_batches, collate_fn=collate)
    eval_loader = DataLoader(features.validation, collate_fn=collate, batch_sampler=eval_batches(
        lengths["validation"], t.eval_batch_size))
    optimizer = torch.optim.AdamW(optimizer_groups(model, t.weight_decay), lr=t.lr)
    model, optimizer, train_loader, eval_loader = acc.prepare(
        model, optimizer, train_loader, eval_loader)
    total_steps, max_epochs = step_budget(t, len(train_loader))
    scheduler = acc.prepare(get_scheduler(
        t.schedule, optimizer,
        num_warmup_steps=int(t.warmup_ratio * total_steps) * acc.num_processes,
        num_training_steps=total_steps * acc.num_processes))
    return TrainingParts(
        accelerator=acc, model=model, optimizer=optimizer, scheduler=scheduler,
        train_loader=train_loader, train_batches=train_batches, eval_loader=eval_loader,
        body=body, replay=replay, frozen_dropout=frozen_dropout,
        checkpointer=Checkpointer(output_dir, t.keep_checkpoints, acc),
        total_steps=total_steps, max_epochs=max_epochs)


def step_budget(t: DictConfig, batches_per_epoch: int) -> tuple[int, int]:
    """(optimizer steps in all, epochs to start): max_steps, when set, wins over max_epochs."""
    steps_per_epoch = math.ceil(batches_per_epoch / t.grad_accum)
    if not t.max_steps:
        return steps_per_epoch * t.max_epochs, t.max_epochs
    return t.max_steps, math.ceil(t.max_steps / steps_per_epoch)


def optimizer_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters only; no weight decay on biases and normalization weights."""
    norm_params = {
        id(p) for m in model.modules() if "norm" in type(m).__name__.lower()
        for p in m.parameters(recurse=False)
    }
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("bias") or id(p) in norm_params:
            no_decay.append(p)
        else:
            decay.append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def _lengths(ds) -> list[int]:
    return [len(ids) for ids in ds["input_ids"]]


# ------------------------------------------------------------------ frozen-body cache


def body_of(model: torch.nn.Module, body_name: str) -> torch.nn.Module:
    """The base model inside the task model ("": the task model is its own body)."""
    return model.get_submodule(body_name) if body_name else model


def body_cache_replay(cfg: DictConfig, plan, model: torch.nn.Module, body_name: str,
                      task: Task, features: Features, lengths: dict[str, list[int]],
                      accelerator: Accelerator) -> body_cache.Replay | None:
    """Run the frozen body once over both splits when that is exact and small enough;
    the replay then stands in for it. None (and a log line saying why) otherwise."""
    reason = body_cache.why_not(cfg, plan, body_name)
    if reason is None:
        kind = body_cache.kind_for(cfg)
        loaders = _cache_loaders(features, task.collator(model), lengths,
                                 cfg.trainer.eval_batch_size)
        reason = _too_big(kind, loaders, model.config.hidden_size, cfg.trainer.cache_max_mb)
    if reason is not None:
        log.info("frozen-body feature cache not used: %s", reason)
        return None
    pad_token_id = task.tokenizer.pad_token_id
    start = time.perf_counter()
    model.to(accelerator.device)
    store = body_cache.compute(body_of(model, body_name), kind, loaders, pad_token_id,
                               accelerator)
    log.info("frozen-body feature cache: computed %s features of %d rows once in %.1f s "
             "(%.1f MB); every epoch and evaluation reuse them", kind,
             sum(len(t) for t in store.splits.values()), time.perf_counter() - start,
             store.megabytes)
    return body_cache.Replay(store, pad_token_id, accelerator.device)


def _cache_loaders(features: Features, collate, lengths: dict[str, list[int]],
                   batch_size: int) -> dict[str, tuple[DataLoader, int, int]]:
    """split -> (loader in evaluation order, rows, longest row)."""
    loaders = {}
    for split, split_lengths in lengths.items():
        ds = getattr(features, split)
        loaders[split] = (DataLoader(ds, collate_fn=collate, batch_sampler=eval_batches(
            split_lengths, batch_size)), len(ds), max(split_lengths))
    return loaders


def _too_big(kind: str, loaders: dict[str, tuple[DataLoader, int, int]], hidden: int,
             max_mb: int) -> str | None:
    rows = sum(split_rows for _, split_rows, _ in loaders.values())
    longest = max(split_longest for *_, split_longest in loaders.values())
    size = body_cache.estimate_megabytes(kind, rows, longest, hidden)
    if size > max_mb:
        return f"it would take {size:,.0f} MB, more than trainer.cache_max_mb={max_mb}"
    return None

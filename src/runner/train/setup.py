"""Building what a run trains with: the accelerator, the loaders, the optimizer and its
schedule, the frozen-body cache and the checkpointer. The loop (runner.train.loop) only
runs them."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration
from omegaconf import DictConfig
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
from torch.utils.data import DataLoader
from transformers import get_scheduler

from runner.distributed import use_cpu
from runner.errors import ConfigError, Problem
from runner.model.lr_groups import LrGroup, groups_for
from runner.model.pooled import pooling_of
from runner.model.stages import Stage, trainable_in_any
from runner.tasks.base import INDEX, Features, Task
from runner.train import body_cache, memory, prefix_cache
from runner.train.accelerator import fresh_accelerator
from runner.train.batching import TrainBatches, eval_batches
from runner.train.checkpoints import PROGRESS, Checkpointer
from runner.train.unfreeze import Schedule

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
    batch_size: int  # rows per micro-batch (trainer.batch_size, or what auto chose)
    grad_accum: int  # micro-batches per optimizer step
    schedule: Schedule  # the freezing stages (one, unless freeze=gradual)


def build_training(cfg: DictConfig, model: torch.nn.Module, task: Task, features: Features,
                   plan, body_name: str, output_dir: Path, resuming: bool = False,
                   stages: list[Stage] | None = None) -> TrainingParts:
    """Build the run's training parts. The order matters: the feature cache runs the bare
    body before accelerate prepares (and, with several processes, wraps) the model.
    `plan` is the one applied now; `stages` all of the run's (freeze=gradual), `plan`'s
    among them."""
    t = cfg.trainer
    schedule = Schedule(cfg, stages or [], next((s for s in stages or [] if s.plan is plan),
                                                None), body_name)
    # Non-blocking copies from pinned memory: moving a batch to the GPU must not wait for
    # the previous step to finish (a plain copy synchronizes the host with the device).
    acc = fresh_accelerator(mixed_precision=t.mixed_precision,
                            gradient_accumulation_steps=t.grad_accum, cpu=use_cpu(t.cpu),
                            dataloader_config=DataLoaderConfiguration(non_blocking=True))
    pin = acc.device.type == "cuda"
    if t.gradient_checkpointing:
        memory.enable_gradient_checkpointing(model)
    collate = task.collator(model)
    lengths = {split: _lengths(getattr(features, split)) for split in ("train", "validation")}
    body = body_of(model, body_name)  # before accelerate wraps the model
    replay = body_cache_replay(cfg, plan, model, body_name, task, features, lengths, acc)
    if replay is None and schedule.staged:
        log.info("frozen prefix not cached: freeze=gradual moves the frozen prefix at "
                 "every stage")
    elif replay is None:
        replay = prefix_cache.prepare(
            cfg, plan, model, body_name,
            _cache_loaders(features, collate, lengths, t.eval_batch_size), acc, output_dir,
            task.tokenizer.pad_token_id)
    frozen_dropout = prefix_cache.frozen_dropout(cfg, model, plan,
                                                 prefix_cache.layout_of(cfg, model), body_name)
    checkpointer = Checkpointer(output_dir, t.keep_checkpoints, acc)
    probe = _probe(t, model, features.train, lengths["train"], collate, body, replay,
                   frozen_dropout, acc)
    batch_size, grad_accum = batch_plan(t, model, probe, max(lengths["train"]),
                                        checkpointer if resuming else None, acc)
    acc.gradient_accumulation_steps = grad_accum
    train_batches = TrainBatches(lengths["train"], batch_size, t.seed, t.group_by_length)
    train_loader = DataLoader(features.train, batch_sampler=train_batches, collate_fn=collate,
                              pin_memory=pin)
    eval_loader = DataLoader(features.validation, collate_fn=collate, pin_memory=pin,
                             batch_sampler=eval_batches(lengths["validation"], t.eval_batch_size))
    # Fused AdamW: one kernel, and it skips a step on the device when told to (found_inf),
    # so trainer.nan_policy=skip needs no host sync (runner.train.tally).
    fused = acc.device.type in _get_fused_kernels_supported_devices()
    # Every tensor some stage trains joins now; a frozen one has no gradient, and AdamW
    # leaves it (and its state) alone until its stage (runner.train.unfreeze).
    in_optimizer = (trainable_in_any(stages) if stages else
                    {n for n, p in model.named_parameters() if p.requires_grad})
    groups = groups_for(cfg, model, in_optimizer)
    if groups:
        log.info("learning rates: %s", ", ".join(f"{g.name} {g.lr:.3g}" for g in groups))
    optimizer = torch.optim.AdamW(optimizer_groups(model, t.weight_decay, groups, in_optimizer),
                                  lr=t.lr, fused=fused or None)
    if schedule.staged and acc.num_processes > 1:
        raise ConfigError([Problem(
            "freeze.strategy", f"gradual unfreezing runs in one process, and this run has "
            f"{acc.num_processes} (DDP fixes the trainable tensors when it wraps the model)",
            "launch it as one process, or choose a fixed freeze strategy")])
    model, optimizer, train_loader, eval_loader = acc.prepare(
        model, optimizer, train_loader, eval_loader)
    total_steps, max_epochs = step_budget(t, len(train_loader), grad_accum)
    scheduler = acc.prepare(get_scheduler(
        t.schedule, optimizer,
        num_warmup_steps=int(t.warmup_ratio * total_steps) * acc.num_processes,
        num_training_steps=total_steps * acc.num_processes))
    return TrainingParts(
        accelerator=acc, model=model, optimizer=optimizer, scheduler=scheduler,
        train_loader=train_loader, train_batches=train_batches, eval_loader=eval_loader,
        body=body, replay=replay, frozen_dropout=frozen_dropout, checkpointer=checkpointer,
        total_steps=total_steps, max_epochs=max_epochs, batch_size=batch_size,
        grad_accum=grad_accum, schedule=schedule)


def step_budget(t: DictConfig, batches_per_epoch: int, grad_accum: int | None = None
                ) -> tuple[int, int]:
    """(optimizer steps in all, epochs to start): max_steps, when set, wins over max_epochs."""
    steps_per_epoch = math.ceil(batches_per_epoch / (grad_accum or t.grad_accum))
    if not t.max_steps:
        return steps_per_epoch * t.max_epochs, t.max_epochs
    return t.max_steps, math.ceil(t.max_steps / steps_per_epoch)


def optimizer_groups(model: torch.nn.Module, weight_decay: float,
                     lr_groups: list[LrGroup] | None = None,
                     names: set[str] | None = None) -> list[dict[str, Any]]:
    """The tensors named (default: the trainable ones); no weight decay on biases and
    normalization weights. With layer-wise rates, that split within each named group (its
    param groups carry `name` and `lr`)."""
    norm_params = {
        id(p) for m in model.modules() if "norm" in type(m).__name__.lower()
        for p in m.parameters(recurse=False)
    }
    group_of = {n: g.name for g in lr_groups or () for n in g.names}
    split: dict[tuple[str | None, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not (p.requires_grad if names is None else name in names):
            continue
        decays = not (name.endswith("bias") or id(p) in norm_params)
        split.setdefault((group_of.get(name), decays), []).append(p)
    out = []
    for group in lr_groups or [None]:
        key = group.name if group else None
        for decays in (True, False):
            if split.get((key, decays)):
                named = {"name": group.name, "lr": group.lr} if group else {}
                out.append({"params": split[(key, decays)],
                            "weight_decay": weight_decay if decays else 0.0, **named})
    return out


def _lengths(ds) -> list[int]:
    return [len(ids) for ids in ds["input_ids"]]


# ------------------------------------------------------------------ batch size


def batch_plan(t: DictConfig, model: torch.nn.Module, run_batch, longest: int,
               checkpointer: Checkpointer | None, acc: Accelerator) -> tuple[int, int]:
    """(rows per micro-batch, micro-batches per optimizer step). With auto_batch_size: what
    the resumed checkpoint used (so a resumed run sees the same batches), else the largest
    size that fits, agreed by all processes."""
    if not t.auto_batch_size:
        return t.batch_size, t.grad_accum
    per_step = t.batch_size * t.grad_accum
    latest = checkpointer.latest() if checkpointer is not None else None
    saved = json.loads((latest / PROGRESS).read_text()) if latest is not None else {}
    if saved.get("batch_size"):
        size = saved["batch_size"]
        log.info("trainer.auto_batch_size: %d rows per batch, as in %s", size, latest)
    else:
        trainable = [p for p in model.parameters() if p.requires_grad]
        model.to(acc.device)  # before the optimizer-state stand-ins are allocated
        size = memory.largest_batch(run_batch, t.batch_size, per_step, trainable, longest)
        if acc.num_processes > 1:  # the smallest fits everywhere (and divides per_step)
            size = -int(acc.reduce(torch.tensor(-size, device=acc.device), "max"))
    log.info("trainer.auto_batch_size: batch %d x %d accumulation steps = %d rows per "
             "optimizer step (probed on the %d-token longest rows)", size, per_step // size,
             per_step, longest)
    return size, per_step // size


def _probe(t: DictConfig, model: torch.nn.Module, train, lengths: list[int], collate,
           body: torch.nn.Module, replay, frozen_dropout: list[torch.nn.Module],
           acc: Accelerator):
    """run_batch(size): a training forward and backward on the `size` longest rows, run
    as the loop runs it (device, mixed precision, feature cache, train/eval modes)."""
    longest_first = sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def run_batch(size: int) -> None:
        model.train()
        if t.frozen_eval_mode:
            memory.frozen_modules_to_eval(model, frozen_dropout)
        loader = DataLoader(train, batch_sampler=[longest_first[:size]], collate_fn=collate)
        batch = {k: v.to(acc.device) for k, v in next(iter(loader)).items()}
        rows = batch.pop(INDEX)
        if replay is not None:
            replay.select("train", rows)
        with body_cache.replaying(body, replay), acc.autocast():
            loss = model(**batch).loss
        loss.backward()

    return run_batch


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
                               accelerator, pooling=pooling_of(model))
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

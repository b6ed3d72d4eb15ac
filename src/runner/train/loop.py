"""The training loop (accelerate): optimise the trainable parameters, evaluate, checkpoint.

The loop only says what happened ("a step is done", "an evaluation gave these metrics");
the checkpointer decides how to write, the tracker decides whether this process logs.
"""

from __future__ import annotations

import logging
import math
import resource
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from runner.distributed import use_cpu
from runner.errors import ConfigError, Interrupted, Preempted, Problem, RunnerError
from runner.tasks.base import INDEX, EvalState, Features, Task
from runner.train import body_cache as feature_cache
from runner.train.batching import TrainBatches, eval_batches
from runner.train.checkpoints import Checkpointer

log = logging.getLogger(__name__)
# accelerate narrates every file it saves at INFO; runner says what matters itself.
logging.getLogger("accelerate").setLevel(logging.WARNING)


class TrainingError(RunnerError):
    """Training cannot go on (a non-finite loss, ...)."""


@dataclass
class Progress:
    """Where training is; saved with every checkpoint (as JSON, never pickled)."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch already consumed
    best_objective: float | None = None
    evals_without_improvement: int = 0
    skipped_steps: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    metrics: dict[str, float]
    progress: Progress
    stopped_early: bool


# ---------------------------------------------------------------------------- helpers


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


def frozen_modules_to_eval(model: torch.nn.Module) -> None:
    """Put every module whose parameters are all frozen in eval mode (no dropout).

    Parameter-free modules (a dropout right before a trainable head) follow their parent,
    so the head still trains with its dropout.
    """
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    peak = {"system/peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        peak["system/peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


@contextmanager
def stop_on_signals():
    """Turn SIGINT / SIGTERM (stop) and SIGUSR1 / SIGUSR2 (preemption) into a flag the loop
    checks between steps. Yields (signals received, the handlers they replaced)."""
    received: list[int] = []

    def handler(signum, frame):
        if received:  # a second signal: stop now
            raise KeyboardInterrupt
        received.append(signum)
        log.warning("received %s: finishing the current step, then saving a checkpoint",
                    signal.Signals(signum).name)

    watched = (signal.SIGINT, signal.SIGTERM, *PREEMPTION_SIGNALS)
    previous = {s: signal.signal(s, handler) for s in watched}
    try:
        yield received, previous
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)  # SLURM / submitit warn with these


def _lengths(ds) -> list[int]:
    return [len(ids) for ids in ds["input_ids"]]


def fresh_accelerator(**settings) -> Accelerator:
    """An Accelerator with this run's settings. accelerate keeps its state process-wide and
    refuses new settings (say, another mixed precision) once set, but the jobs of a sweep
    run one after another in one process: each run starts from a clean training state
    (the process group, in PartialState, is kept)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(**settings)


# ------------------------------------------------------------------------------- loop


class Trainer:
    def __init__(self, cfg: DictConfig, model, task: Task, features: Features,
                 output_dir: Path, log_metrics: Callable[[dict[str, float], int], None],
                 objective: tuple[str, str], plan, body_name: str,
                 accelerator: Accelerator | None = None):
        t = cfg.trainer
        self.cfg, self.t, self.task, self.features = cfg, t, task, features
        self.log_metrics = log_metrics
        self.objective_name, self.objective_mode = objective
        self.accelerator = accelerator or fresh_accelerator(
            mixed_precision=t.mixed_precision, gradient_accumulation_steps=t.grad_accum,
            cpu=use_cpu(t.cpu))
        acc = self.accelerator
        if t.mixed_precision == "fp16" and acc.device.type == "cpu":
            raise ConfigError([Problem(
                "trainer.mixed_precision", "fp16 needs a GPU and this run is on the CPU "
                "(it would silently train in float32)",
                "use trainer.mixed_precision=bf16 (CPU autocast) or no")])
        collate = task.collator(model)
        lengths = {split: _lengths(getattr(features, split)) for split in ("train", "validation")}
        self.body = model.get_submodule(body_name) if body_name else model
        self.replay = self._feature_cache(model, plan, body_name, collate, lengths)
        self.train_sampler = TrainBatches(lengths["train"], t.batch_size, t.seed,
                                          t.group_by_length)
        train_loader = DataLoader(features.train, batch_sampler=self.train_sampler,
                                  collate_fn=collate)
        eval_loader = DataLoader(features.validation, collate_fn=collate,
                                 batch_sampler=eval_batches(lengths["validation"],
                                                            t.eval_batch_size))
        optimizer = torch.optim.AdamW(optimizer_groups(model, t.weight_decay), lr=t.lr)
        self.model, self.optimizer, self.train_loader, self.eval_loader = acc.prepare(
            model, optimizer, train_loader, eval_loader)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / t.grad_accum)
        self.total_steps = t.max_steps or self.steps_per_epoch * t.max_epochs
        self.max_epochs = t.max_epochs if not t.max_steps else math.ceil(
            t.max_steps / self.steps_per_epoch)
        scheduler = get_scheduler(
            t.schedule, self.optimizer,
            num_warmup_steps=int(t.warmup_ratio * self.total_steps) * acc.num_processes,
            num_training_steps=self.total_steps * acc.num_processes)
        self.scheduler = acc.prepare(scheduler)
        self.checkpointer = Checkpointer(output_dir, t.keep_checkpoints, acc)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.progress = Progress()
        self.saved_step = self.evaluated_step = -1

    # --- frozen-body feature cache
    def _feature_cache(self, model, plan, body_name: str, collate,
                       lengths: dict[str, list[int]]) -> feature_cache.Replay | None:
        reason = feature_cache.why_not(self.cfg, plan, body_name)
        kind = feature_cache.KINDS.get((self.cfg.model.family, self.cfg.head.task))
        loaders = {}
        if reason is None:
            hidden = model.config.hidden_size
            rows = longest = 0
            for split, split_lengths in lengths.items():
                ds = getattr(self.features, split)
                loaders[split] = (DataLoader(ds, collate_fn=collate, batch_sampler=eval_batches(
                    split_lengths, self.t.eval_batch_size)), len(ds), max(split_lengths))
                rows, longest = rows + len(ds), max(longest, max(split_lengths))
            size = feature_cache.estimate_megabytes(kind, rows, longest, hidden)
            if size > self.t.cache_max_mb:
                reason = (f"it would take {size:,.0f} MB, more than trainer.cache_max_mb="
                          f"{self.t.cache_max_mb}")
        if reason is not None:
            log.info("frozen-body feature cache not used: %s", reason)
            return None
        start = time.perf_counter()
        model.to(self.accelerator.device)
        pad = self.task.tokenizer.pad_token_id
        store = feature_cache.compute(self.body, kind, loaders, pad, self.accelerator)
        log.info("frozen-body feature cache: computed %s features of %d rows once in %.1f s "
                 "(%.1f MB); every epoch and evaluation reuse them", kind,
                 sum(len(t) for t in store.splits.values()), time.perf_counter() - start,
                 store.megabytes)
        return feature_cache.Replay(store, pad, self.accelerator.device)

    def _select(self, split: str, batch: dict) -> torch.Tensor:
        rows = batch.pop(INDEX)
        if self.replay is not None:
            self.replay.select(split, rows)
        return rows

    # --- state
    def resume(self, run_dir: Path) -> None:
        checkpointer = Checkpointer(run_dir, self.t.keep_checkpoints, self.accelerator)
        checkpointer.clean_staging()
        latest = checkpointer.latest()
        if latest is None:
            return
        saved = checkpointer.load(latest)
        saved.pop("saved_at", None)
        self.progress = Progress(**saved)
        log.info("resumed from %s (step %d, epoch %d)", latest, self.progress.step,
                 self.progress.epoch)

    def save(self) -> None:
        if self.saved_step == self.progress.step:
            return
        path = self.checkpointer.save(self.progress.step, vars(self.progress))
        self.saved_step = self.progress.step
        log.info("checkpoint saved: %s", path)

    # --- evaluation
    def evaluate(self) -> dict[str, float]:
        acc = self.accelerator
        self.model.eval()
        state = EvalState()
        for batch in tqdm(self.eval_loader, desc="evaluating", leave=False,
                          disable=not acc.is_main_process):
            rows = self._select("validation", batch)
            with torch.no_grad(), feature_cache.replaying(self.body, self.replay):
                out = self.task.eval_step(self.model, batch, rows, acc)
            self.task.accumulate(state, acc.gather_for_metrics(out))
        self.model.train()
        if self.t.frozen_eval_mode:
            frozen_modules_to_eval(self.model)
        return {f"eval/{k}": v for k, v in self.task.compute(state, self.features).items()}

    def _improved(self, value: float) -> bool:
        best = self.progress.best_objective
        if best is None:
            return True
        return value > best if self.objective_mode == "max" else value < best

    def _after_eval(self, metrics: dict[str, float]) -> bool:
        """Record an evaluation; True when early stopping says to stop."""
        self.evaluated_step = self.progress.step
        self.progress.last_metrics = metrics
        self.log_metrics(metrics, self.progress.step)
        value = metrics.get(self.objective_name)
        if value is None:
            raise TrainingError(
                f"trainer.objective={self.objective_name!r} is not among the evaluation "
                f"metrics: {', '.join(sorted(metrics))}. Set trainer.objective to one of them.")
        if self._improved(value):
            self.progress.best_objective = value
            self.progress.evals_without_improvement = 0
        else:
            self.progress.evals_without_improvement += 1
        if self.accelerator.is_main_process:
            log.info("step %d: %s", self.progress.step,
                     "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        patience = self.t.early_stopping_patience
        return patience is not None and self.progress.evals_without_improvement >= patience

    # --- training
    def _seed_step(self, micro_batch: int) -> None:
        # Dropout depends only on (seed, micro-batch, rank): a resumed run draws exactly the
        # masks an uninterrupted one would.
        acc = self.accelerator
        index = micro_batch * acc.num_processes + acc.process_index
        torch.manual_seed((self.t.seed * 1_000_003 + index) % 2**63)

    def _finite(self, loss: torch.Tensor) -> bool:
        finite = torch.isfinite(loss.detach()).float()
        if self.accelerator.num_processes > 1:  # every rank must take the same decision
            finite = self.accelerator.reduce(finite, "min")
        return bool(finite.item())

    def fit(self) -> TrainResult:
        acc, t, p = self.accelerator, self.t, self.progress
        self.model.train()
        if t.frozen_eval_mode:
            frozen_modules_to_eval(self.model)
        bar = tqdm(total=self.total_steps, initial=p.step, desc="training",
                   disable=not acc.is_main_process, dynamic_ncols=True)
        stopped_early = False
        window_loss, window_steps, window_samples, window_start = 0.0, 0, 0, time.perf_counter()
        with stop_on_signals() as (signals, handlers):
            while p.epoch < self.max_epochs and p.step < self.total_steps and not stopped_early:
                self.train_sampler.use_epoch(p.epoch)
                loader = (acc.skip_first_batches(self.train_loader, p.batch_in_epoch)
                          if p.batch_in_epoch else self.train_loader)
                for batch in loader:
                    self._seed_step(p.step * t.grad_accum + p.batch_in_epoch % t.grad_accum)
                    self._select("train", batch)
                    with (acc.accumulate(self.model),
                          feature_cache.replaying(self.body, self.replay)):
                        loss = self.model(**batch).loss
                        if not self._finite(loss):
                            self._non_finite(loss)
                            self.optimizer.zero_grad()
                            p.batch_in_epoch += 1
                            continue
                        acc.backward(loss)
                        if acc.sync_gradients and t.max_grad_norm:
                            acc.clip_grad_norm_(self.trainable, t.max_grad_norm)
                        self.optimizer.step()
                        self.scheduler.step()
                        self.optimizer.zero_grad()
                    p.batch_in_epoch += 1
                    window_loss += float(loss.detach()) / t.grad_accum
                    window_samples += len(batch["input_ids"]) * acc.num_processes
                    if not acc.sync_gradients:
                        continue
                    p.step += 1
                    window_steps += 1
                    bar.update(1)
                    if p.step % t.log_every == 0 or p.step == self.total_steps:
                        elapsed = time.perf_counter() - window_start
                        mean_loss = window_loss / window_steps
                        self.log_metrics({
                            "train/loss": mean_loss,
                            "train/lr": self.scheduler.get_last_lr()[0],
                            "train/samples_per_second": window_samples / elapsed,
                            "train/epoch": p.epoch + p.batch_in_epoch / len(self.train_loader),
                        }, p.step)
                        bar.set_postfix(loss=f"{mean_loss:.4f}",
                                        samples_s=f"{window_samples / elapsed:.0f}")
                        window_loss, window_steps, window_samples = 0.0, 0, 0
                        window_start = time.perf_counter()
                    if t.eval_strategy == "steps" and p.step % t.eval_steps == 0:
                        stopped_early = self._after_eval(self.evaluate())
                    if t.save_every and p.step % t.save_every == 0:
                        self.save()
                    if signals:
                        self.save()
                        name = signal.Signals(signals[0]).name
                        if signals[0] in PREEMPTION_SIGNALS:
                            raise Preempted(
                                f"preempted by {name} at step {p.step}; checkpoint saved in "
                                f"{self.checkpointer.root}. Started again in the same "
                                "directory (a requeued job), the run resumes by itself.",
                                signals[0], handlers)
                        raise Interrupted(
                            f"stopped by {name} at step {p.step}; checkpoint saved in "
                            f"{self.checkpointer.root}. Continue with trainer.resume=auto.")
                    if stopped_early or p.step >= self.total_steps:
                        break
                else:  # the epoch ran to its end
                    p.epoch += 1
                    p.batch_in_epoch = 0
                    if t.eval_strategy == "epoch":
                        stopped_early = self._after_eval(self.evaluate())
                    self.save()
                    continue
                break
        bar.close()
        if stopped_early:
            log.info("early stopping: %s did not improve for %d evaluations",
                     self.objective_name, t.early_stopping_patience)
        if self.evaluated_step != p.step or not p.last_metrics:
            self._after_eval(self.evaluate())
        self.save()
        extra = peak_memory_mb(acc.device)
        if p.skipped_steps:
            extra["train/skipped_steps"] = p.skipped_steps
        self.log_metrics(extra, p.step)  # the eval metrics were logged by the evaluation
        return TrainResult(metrics={**p.last_metrics, **extra}, progress=p,
                           stopped_early=stopped_early)

    def _non_finite(self, loss: torch.Tensor) -> None:
        p = self.progress
        if self.t.nan_policy == "skip":
            p.skipped_steps += 1
            log.warning("non-finite loss (%s) at step %d: batch skipped (%d so far)",
                        float(loss.detach()), p.step + 1, p.skipped_steps)
            return
        raise TrainingError(
            f"the loss became {float(loss.detach())} at step {p.step + 1} (epoch {p.epoch + 1}); "
            "training stopped rather than hide it. Lower trainer.lr, keep gradient clipping on "
            "(trainer.max_grad_norm), check the data, or set trainer.nan_policy=skip to skip "
            "such batches.")

"""The training loop (accelerate): optimise the trainable parameters, evaluate, checkpoint.

The loop only says what happened ("a step is done", "an evaluation gave these metrics");
runner.train.setup built what it runs, the checkpointer decides how to write, the tracker
decides whether this process logs.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from runner.errors import Pruned, RunnerError
from runner.model.stages import Stage
from runner.tasks.base import INDEX, Features, Task
from runner.train import body_cache, scoring, trial
from runner.train.best import BestWeights
from runner.train.checkpoints import Checkpointer, ResumeError
from runner.train.memory import frozen_modules_to_eval
from runner.train.scoring import EvaluationCut
from runner.train.setup import TrainingParts
from runner.train.signals import stop_on_signals, stopped_by
from runner.train.tally import DeviceTally

log = logging.getLogger(__name__)


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
    batch_size: int = 0  # rows per micro-batch, and micro-batches per optimizer step: what
    grad_accum: int = 0  # trainer.auto_batch_size chose is kept for a resumed run


@dataclass
class TrainResult:
    metrics: dict[str, float]  # the last evaluation's, plus peak memory and skipped steps
    best_step: int | None = None  # trainer.load_best: the step whose weights the model has


class LogWindow:
    """What happened since the last train/ log line: loss, optimizer steps, samples, time.
    The losses arrive from the device at sync points (runner.train.tally)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss_sum = 0.0  # finite micro-batch losses
        self.finite_batches = 0
        self.steps = 0
        self.samples = 0  # across all processes, skipped batches included
        self.start = time.perf_counter()

    def mean_loss(self) -> float | None:
        return self.loss_sum / self.finite_batches if self.finite_batches else None

    def samples_per_second(self) -> float:
        return self.samples / (time.perf_counter() - self.start)


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    peak = {"system/peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        peak["system/peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


class Trainer:
    def __init__(self, t: DictConfig, parts: TrainingParts, task: Task, features: Features,
                 log_metrics: Callable[[dict[str, float], int], None],
                 objective: tuple[str, str],
                 on_stage: Callable[[Stage, int], None] | None = None):
        self.t, self.parts, self.task, self.features = t, parts, task, features
        self.log_metrics = log_metrics
        self.on_stage = on_stage  # a new freezing stage began at this step
        self.objective_name, self.objective_mode = objective
        self.accelerator, self.model = parts.accelerator, parts.model
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.grad_accum = parts.grad_accum
        self.progress = Progress(batch_size=parts.batch_size, grad_accum=parts.grad_accum)
        reduce_max = ((lambda x: self.accelerator.reduce(x, "max"))
                      if self.accelerator.num_processes > 1 else None)
        self.tally = DeviceTally(self.accelerator.device, reduce_max)
        self.window = LogWindow()
        self.saved_step = self.evaluated_step = -1
        self.stopped_early = False  # early stopping's patience ran out
        self.best = (BestWeights(parts.checkpointer.root.parent, self.accelerator)
                     if t.load_best else None)
        self.trial = trial.reporter(self.objective_name, self.accelerator)  # in an Optuna sweep
        self.signals: list[int] = []  # received while training (runner.train.signals)

    # --- state
    def resume(self, run_dir: Path) -> None:
        checkpointer = Checkpointer(run_dir, self.t.keep_checkpoints, self.accelerator)
        checkpointer.clean_staging()
        latest = checkpointer.newest_whole()
        if latest is None:
            if checkpointer.latest() is not None:
                raise ResumeError(
                    f"no checkpoint in {checkpointer.root} can be read: each one is damaged "
                    "(see the warnings above). Delete the damaged checkpoints, or start fresh "
                    "with trainer.resume=never and another trainer.output_dir.")
            return
        saved = checkpointer.load(latest)
        saved.pop("saved_at", None)
        self.progress = Progress(**saved)
        self.progress.batch_size = self.parts.batch_size  # the same, read by the setup
        self.progress.grad_accum = self.parts.grad_accum
        log.info("resumed from %s (step %d, epoch %d)", latest, self.progress.step,
                 self.progress.epoch)

    def save(self) -> None:
        self._sync()  # never save the weights a non-finite loss has already reached
        if self.saved_step == self.progress.step:
            return
        path = self.parts.checkpointer.save(self.progress.step, vars(self.progress))
        self.saved_step = self.progress.step
        log.info("checkpoint saved: %s", path)

    # --- evaluation
    def _select(self, split: str, batch: dict) -> torch.Tensor:
        rows = batch.pop(INDEX)
        if self.parts.replay is not None:
            self.parts.replay.select(split, rows)
        return rows

    def _train_mode(self) -> None:
        self.model.train()
        if self.t.frozen_eval_mode:
            frozen_modules_to_eval(self.model, self.parts.frozen_dropout)

    def evaluate(self) -> dict[str, float]:
        self._sync()
        metrics = scoring.score(self.model, self.task, self.parts.eval_loader, self.features,
                                self.accelerator, body=self.parts.body, replay=self.parts.replay,
                                stop=lambda: bool(self.signals))
        self._train_mode()
        return {f"eval/{k}": v for k, v in metrics.items()}

    def score_test(self, test: Features) -> dict[str, float]:
        """The test split scored once with the model as it ends (the best weights with
        trainer.load_best), by the full model: the feature caches hold training splits."""
        loader = scoring.split_loader(self.task, self.model, test.validation,
                                      self.t.eval_batch_size, self.accelerator)
        metrics = scoring.score(self.model, self.task, loader, test, self.accelerator,
                                desc="scoring the test split")
        return {f"test/{k}": v for k, v in metrics.items()}

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
            if self.best is not None:
                self.best.keep(self.model, self.parts.optimizer, self.progress.step, metrics)
        else:
            self.progress.evals_without_improvement += 1
        if self.accelerator.is_main_process:
            log.info("step %d: %s", self.progress.step,
                     "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        if self.trial is not None:
            self._report_to_trial(metrics)
        patience = self.t.early_stopping_patience
        return patience is not None and self.progress.evals_without_improvement >= patience

    def _report_to_trial(self, metrics: dict[str, float]) -> None:
        try:
            self.trial.check(metrics, self.progress.step)
        except Pruned:
            self.save()  # a pruned trial keeps its checkpoint, as an interrupted run does
            raise

    # --- training
    def fit(self) -> TrainResult:
        p = self.progress
        if self.best is not None and p.step == 0:
            self.best.clear()  # a fresh start in a reused directory
        self._train_mode()
        bar = tqdm(total=self.parts.total_steps, initial=p.step, desc="training",
                   disable=not self.accelerator.is_main_process, dynamic_ncols=True)
        window = self.window
        window.reset()
        with stop_on_signals() as (signals, handlers):
            self.signals = signals
            try:
                while (p.epoch < self.parts.max_epochs and p.step < self.parts.total_steps
                       and not self.stopped_early):
                    self._enter_stage()
                    if not self._run_epoch(bar, window, signals, handlers):
                        break
                    self._end_epoch()
                bar.close()
                # The final evaluation and save are inside the watch too: a signal there
                # still gets its checkpoint and the message that says so.
                result = self._finish()
            except EvaluationCut:
                pass  # a signal cut an evaluation short: save the training state and stop
            self._stop_if_signalled(signals, handlers)
        return result

    def _enter_stage(self) -> None:
        """freeze=gradual: the stage of this epoch, if it is a new one."""
        stage = self.parts.schedule.enter(self.parts, self.progress.epoch)
        if stage is None:
            return
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self._train_mode()  # the unfrozen blocks train with their dropout
        if self.on_stage is not None:
            self.on_stage(stage, self.progress.step)

    def _run_epoch(self, bar, window: LogWindow, signals: list[int], handlers: dict) -> bool:
        """The rest of the current epoch; False when training stopped inside it."""
        p, acc = self.progress, self.accelerator
        self.parts.train_batches.use_epoch(p.epoch)
        loader = self.parts.train_loader
        if p.batch_in_epoch:  # resumed mid-epoch: the same order, without what was done
            loader = acc.skip_first_batches(loader, p.batch_in_epoch)
        for batch in loader:
            if not self._micro_step(batch, window):
                continue  # accumulating
            p.step += 1
            window.steps += 1
            bar.update(1)
            self._after_step(bar, window)
            self._stop_if_signalled(signals, handlers)
            if self.stopped_early or p.step >= self.parts.total_steps:
                return False
        return True

    def _micro_step(self, batch: dict, window: LogWindow) -> bool:
        """Forward and backward one (micro-)batch; True when it completed an optimizer step.
        Nothing here reads a device value on the host (see runner.train.tally)."""
        acc, p, accum = self.accelerator, self.progress, self.grad_accum
        self._seed_step(p.step * accum + p.batch_in_epoch % accum)
        self._select("train", batch)
        replaying = body_cache.replaying(self.parts.body, self.parts.replay)
        with acc.accumulate(self.model), replaying:
            loss = self.model(**batch).loss
            self.tally.add(loss, p.step + 1, p.epoch + 1)
            self._optimise(loss)  # accelerate divides it by the accumulation steps
        p.batch_in_epoch += 1
        window.samples += len(batch["input_ids"]) * acc.num_processes
        return acc.sync_gradients

    def _optimise(self, loss: torch.Tensor) -> None:
        acc, parts = self.accelerator, self.parts
        acc.backward(loss)
        if acc.sync_gradients and self.t.max_grad_norm:
            acc.clip_grad_norm_(self.trainable, self.t.max_grad_norm)
        step = True
        if acc.sync_gradients and self.t.nan_policy == "skip":
            step = self.tally.guard(parts.optimizer.optimizer)
        if step:
            parts.optimizer.step()  # accelerate makes these no-ops until the window is done
        parts.scheduler.step()
        parts.optimizer.zero_grad()

    def _after_step(self, bar, window: LogWindow) -> None:
        """The cadence after an optimizer step: log line, evaluation, checkpoint."""
        p, t = self.progress, self.t
        if p.step % t.log_every == 0 or p.step == self.parts.total_steps:
            self._log_window(bar, window)
        if t.eval_strategy == "steps" and p.step % t.eval_steps == 0:
            self.stopped_early = self._after_eval(self.evaluate())
        if t.save_every and p.step % t.save_every == 0:
            self.save()

    def _stop_if_signalled(self, signals: list[int], handlers: dict) -> None:
        """A signal arrived during the step: save, then end the run saying why."""
        if signals:
            self.save()
            raise stopped_by(signals[0], handlers, self.progress.step,
                             self.parts.checkpointer.root)

    def _log_window(self, bar, window: LogWindow) -> None:
        p = self.progress
        self._sync()
        mean_loss, samples_per_second = window.mean_loss(), window.samples_per_second()
        loss = {} if mean_loss is None else {"train/loss": mean_loss}  # None: all skipped
        self.log_metrics({
            **loss,
            **self._learning_rates(),
            "train/samples_per_second": samples_per_second,
            "train/epoch": p.epoch + p.batch_in_epoch / len(self.parts.train_loader),
        }, p.step)
        bar.set_postfix(loss=f"{mean_loss:.4f}" if mean_loss is not None else "skipped",
                        samples_s=f"{samples_per_second:.0f}")
        window.reset()

    def _learning_rates(self) -> dict[str, float]:
        """train/lr: trainer.lr as scheduled; train/lr/<group> per layer-wise group."""
        groups = self.parts.optimizer.param_groups
        rates = self.parts.scheduler.get_last_lr()
        first = groups[0]
        named = "name" in first  # then trainer.lr is no group's own rate
        lrs = {"train/lr": self.t.lr * rates[0] / first["initial_lr"] if named else rates[0]}
        lrs.update({f"train/lr/{g['name']}": rate for g, rate in zip(groups, rates, strict=True)
                    if "name" in g})
        return lrs

    def _end_epoch(self) -> None:
        p = self.progress
        p.epoch += 1
        p.batch_in_epoch = 0
        if self.t.eval_strategy == "epoch":
            self.stopped_early = self._after_eval(self.evaluate())
        self.save()

    def _finish(self) -> TrainResult:
        """Evaluate the final weights (unless just done), save, report peak memory."""
        p = self.progress
        self._sync()
        if self.stopped_early:
            log.info("early stopping: %s did not improve for %d evaluations",
                     self.objective_name, self.t.early_stopping_patience)
        if self.evaluated_step != p.step or not p.last_metrics:
            self._after_eval(self.evaluate())
        self.save()
        extra = peak_memory_mb(self.accelerator.device)
        if p.skipped_steps:
            extra["train/skipped_steps"] = p.skipped_steps
        self.log_metrics(extra, p.step)  # the eval metrics were logged by the evaluation
        best = self.best.restore(self.model) if self.best is not None else None
        if best is None:
            return TrainResult(metrics={**p.last_metrics, **extra})
        return TrainResult(metrics={**best["metrics"], **extra}, best_step=best["step"])

    def _seed_step(self, micro_batch: int) -> None:
        # Dropout depends only on (seed, micro-batch, rank): a resumed run draws exactly the
        # masks an uninterrupted one would.
        acc = self.accelerator
        index = micro_batch * acc.num_processes + acc.process_index
        torch.manual_seed((self.t.seed * 1_000_003 + index) % 2**63)

    def _sync(self) -> None:
        """A sync point: bring the device's tally to the host (one copy) and act on it."""
        if not self.tally.pending():
            return
        got, p, t = self.tally.sync(), self.progress, self.t
        self.window.loss_sum += got.loss_sum
        self.window.finite_batches += got.finite_batches
        if got.first_bad is not None and t.nan_policy == "stop":
            step, epoch, value = got.first_bad
            raise TrainingError(
                f"the loss became {value} at step {step} (epoch {epoch}); training stopped "
                "rather than hide it. Lower trainer.lr, keep gradient clipping on "
                "(trainer.max_grad_norm), check the data, or set trainer.nan_policy=skip to "
                "skip such batches.")
        if got.skipped_steps:
            p.skipped_steps += got.skipped_steps
            step, _, value = got.first_bad or (p.step, 0, float("nan"))
            log.warning("non-finite loss (%s) at step %d: %d optimizer steps skipped up to "
                        "step %d (%d so far)", value, step, got.skipped_steps, p.step,
                        p.skipped_steps)

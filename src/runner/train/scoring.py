"""Scoring a split: the evaluation loop shared by training's evaluations, the test split
after training, and `runner.evaluate` on a finished run."""

from __future__ import annotations

from collections.abc import Callable

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from runner.tasks.base import INDEX, EvalState, Features, Task
from runner.train import body_cache
from runner.train.batching import eval_batches


class EvaluationCut(Exception):  # noqa: N818  (not an error: a signal arrived)
    """An evaluation stopped early by a signal."""


def split_loader(task: Task, model: torch.nn.Module, dataset, batch_size: int,
                 accelerator: Accelerator) -> DataLoader:
    """A prepared loader over an evaluation split, longest rows batched together."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    loader = DataLoader(dataset, collate_fn=task.collator(accelerator.unwrap_model(model)),
                        batch_sampler=eval_batches(lengths, batch_size))
    return accelerator.prepare(loader)


def score(model: torch.nn.Module, task: Task, loader: DataLoader, features: Features,
          accelerator: Accelerator, split: str = "validation", body=None, replay=None,
          desc: str = "evaluating", stop: Callable[[], bool] | None = None
          ) -> dict[str, float]:
    """The task's metrics over every batch of `loader` (unprefixed names). `replay` (the
    frozen body's or prefix's stand-in for `body`) covers the training splits only. When
    `stop()` turns true (a signal arrived) the evaluation ends at once with EvaluationCut:
    its metrics would not be used."""
    model.eval()
    state = EvalState()
    for batch in tqdm(loader, desc=desc, leave=False,
                      disable=not accelerator.is_main_process):
        if stop is not None and stop():
            raise EvaluationCut
        rows = batch.pop(INDEX)
        if replay is not None:
            replay.select(split, rows)
        with torch.no_grad(), body_cache.replaying(body, replay):
            out = task.eval_step(model, batch, rows, accelerator)
        task.accumulate(state, accelerator.gather_for_metrics(out))
    return task.compute(state, features)

"""Experiment tracking. logger=none records nothing; logger=mlflow is added in tracking issue."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig


class NullTracker:
    def log_plan(self, model, plan) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def finish(self, metrics, objective_name, objective_value, model_dir) -> None:
        pass


@contextmanager
def start(cfg: DictConfig, where, output_dir: Path, resumed: bool) -> Iterator[NullTracker]:
    yield NullTracker()

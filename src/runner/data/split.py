"""One split read for a finished run: the test split `runner.evaluate` scores, or the rows
`runner.predict` labels. Read, named and mapped as training read its data (runner.data.load,
runner.data.columns); labels map to the ids the model was trained with, never re-derived
from this file alone."""

from __future__ import annotations

from pathlib import Path

import datasets
from omegaconf import DictConfig

from runner.config.tasks import TASKS
from runner.data.columns import header_less_names, map_columns
from runner.data.labels import Labels, _as_class_id
from runner.data.load import _to_rows, read_file
from runner.errors import DataError


def read_rows(cfg: DictConfig, path: str, required: tuple[str, ...] | None = None
              ) -> tuple[list[dict], str]:
    """A file's rows with the head's canonical columns, and where they came from."""
    data, task = cfg.data, cfg.head.task
    where = str(Path(path).expanduser().resolve())
    rows = _to_rows(read_file(where, data))
    if not data.header and rows:
        rows = header_less_names(rows, task, data, where)
    return map_columns(rows, task, data, where, required=required), where


def _hub_test_rows(cfg: DictConfig) -> tuple[list[dict], str]:
    name, config = cfg.data.hub_name, cfg.data.hub_config
    try:
        rows = datasets.load_dataset(name, config, split="test").to_list()
    except Exception as err:  # datasets raises many types for "not reachable / no split"
        raise DataError(f"cannot load the test split of data.hub_name={name!r}: "
                        f"{type(err).__name__}: {str(err)[:300]}. Give a file instead: "
                        "data.test_file=FILE") from None
    where = f"hub dataset {name}[test]"
    return map_columns(rows, cfg.head.task, cfg.data, where), where


def load_test_split(cfg: DictConfig, labels: Labels | None) -> tuple[datasets.Dataset, str]:
    """The run's test split (data.test_file, else a hub dataset's test split), its labels
    mapped to the trained ids."""
    if cfg.data.test_file:
        rows, where = read_rows(cfg, cfg.data.test_file)
    elif cfg.data.source == "hub":
        rows, where = _hub_test_rows(cfg)
    else:
        raise DataError("the run has no test split to score (it was trained without "
                        "data.test_file). Name one: data.test_file=FILE")
    kind = TASKS[cfg.head.task].labels
    for i, row in enumerate(rows, 1):
        if kind == "classes":
            row["label"] = _class_id(row["label"], labels, where, i)
        elif kind == "tags":
            if len(row["tokens"]) != len(row["tags"]):
                raise DataError(f"{where}, row {i}: {len(row['tokens'])} tokens but "
                                f"{len(row['tags'])} tags")
            row["tags"] = [_class_id(t, labels, where, i) for t in row["tags"]]
    return datasets.Dataset.from_list(rows), where


def _class_id(value, labels: Labels, where: str, row: int) -> int | float:
    """A label as the model's id: a trained name, or an id within its range."""
    if labels.regression:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}, row {row}: label {value!r} is not a number (the run "
                            "is a regression)") from None
    if isinstance(value, str) and value in labels.names:
        return labels.names.index(value)
    try:
        index = _as_class_id(value, where, row)
    except DataError:
        index = -1
    if not 0 <= index < len(labels.names):
        raise DataError(f"{where}, row {row}: label {value!r} is not one the model was "
                        f"trained on ({', '.join(labels.names[:20])}). Fix or drop the row.")
    return index

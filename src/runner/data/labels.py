"""Labels: what the head predicts, checked and mapped to ids before any model exists.

Every problem names the split's file and row.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from runner.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labels:
    """What the head predicts: class names (index = id) or a regression target."""

    names: list[str]
    regression: bool = False

    @property
    def num_labels(self) -> int:
        return 1 if self.regression else len(self.names)


def record_in_config(cfg: DictConfig, labels: Labels | None) -> None:
    """Record in the config what the data decided (label count and names)."""
    if labels is None:
        return
    if cfg.head.num_labels is None:
        cfg.head.num_labels = labels.num_labels
    if cfg.head.label_names is None and not labels.regression:
        cfg.head.label_names = list(labels.names)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _rows(splits: dict[str, list[dict]]) -> Iterator[tuple[str, int, dict]]:
    """(split, 1-based row number, row) over every split: errors name the row."""
    for split, rows in splits.items():
        for i, r in enumerate(rows, 1):
            yield split, i, r


def class_labels(splits: dict[str, list[dict]], head: DictConfig, where: dict[str, str]
                  ) -> Labels:
    """Map seqcls labels to ids and check them, naming the split and row of any bad one."""
    for split, i, r in _rows(splits):
        if _is_missing(r["label"]) or r["label"] == "":
            raise DataError(f"{where[split]}, row {i}: the label is empty. Every row needs "
                            "a label.")
    if head.regression:
        return _regression_targets(splits, where)
    values = [r["label"] for _, _, r in _rows(splits)]
    if all(isinstance(v, str) for v in values) and not all(_is_int_text(v) for v in values):
        _refuse_mixed_labels(splits, where)
        labels = _named_classes(splits, head, where, sorted(set(values)))
    else:
        labels = _class_ids(splits, head, where)
    if labels.num_labels < 2:
        raise DataError(f"{where['train']}: every label is {labels.names[0]!r}, and a classifier "
                        "needs at least 2 classes. Add rows of the other classes, set "
                        "head.num_labels=2 (or more) if they only happen to be missing, or "
                        "head.regression=true for a numeric target.")
    return labels


def _refuse_mixed_labels(splits: dict[str, list[dict]], where: dict[str, str]) -> None:
    """Names and integers in one label column ("positive" and "1"): neither reading fits."""
    named = next(((s, i, r) for s, i, r in _rows(splits) if not _is_int_text(r["label"])))
    number = next(((s, i, r) for s, i, r in _rows(splits) if _is_int_text(r["label"])), None)
    if number is not None:
        raise DataError(
            f"the labels mix class names and numbers: {where[named[0]]}, row {named[1]} has "
            f"{named[2]['label']!r} but {where[number[0]]}, row {number[1]} has "
            f"{number[2]['label']!r}. Use one kind: names everywhere, or ids 0..n-1 "
            "everywhere.")


def _regression_targets(splits: dict[str, list[dict]], where: dict[str, str]) -> Labels:
    for split, i, r in _rows(splits):
        try:
            r["label"] = float(r["label"])
        except (TypeError, ValueError):
            raise DataError(f"{where[split]}, row {i}: label {r['label']!r} is not a "
                            "number (head.regression=true)") from None
        if not math.isfinite(r["label"]):
            raise DataError(f"{where[split]}, row {i}: label {r['label']} is not a "
                            "finite number; it would make the loss NaN. Fix or drop "
                            "the row.")
    return Labels(["score"], regression=True)


def _named_classes(splits: dict[str, list[dict]], head: DictConfig, where: dict[str, str],
                   names: list[str]) -> Labels:
    """String labels name themselves; their ids follow the sorted names."""
    if head.num_labels is not None and len(names) > head.num_labels:
        raise DataError(
            f"the data has {len(names)} classes ({', '.join(names[:20])}) but "
            f"head.num_labels={head.num_labels}. Set head.num_labels={len(names)} or more."
        )
    train_names = {r["label"] for r in splits["train"]}
    for split, i, r in _rows(splits):
        if split != "train" and r["label"] not in train_names:
            raise DataError(f"{where[split]}, row {i}: label {r['label']!r} never occurs "
                            "in the training data, so the model cannot learn it")
        r["label"] = names.index(r["label"])
    if head.label_names:
        log.warning("head.label_names is ignored: string labels name themselves (%s)",
                    ", ".join(names))
    names += [f"LABEL_{i}" for i in range(len(names), head.num_labels or len(names))]
    return Labels(names)


def _class_ids(splits: dict[str, list[dict]], head: DictConfig, where: dict[str, str]
               ) -> Labels:
    """Integer labels: ids as given, within 0..num_labels-1."""
    for split, i, r in _rows(splits):
        r["label"] = _as_class_id(r["label"], where[split], i)
    top = max(r["label"] for _, _, r in _rows(splits))
    n = head.num_labels if head.num_labels is not None else top + 1
    train_ids = {r["label"] for r in splits["train"]}
    for split, i, r in _rows(splits):
        if not 0 <= r["label"] < n:
            raise DataError(
                f"{where[split]}, row {i}: label {r['label']} is outside 0..{n - 1} "
                f"(head.num_labels={n}). Set head.num_labels={top + 1} or fix the row."
            )
        if split != "train" and r["label"] not in train_ids:
            raise DataError(f"{where[split]}, row {i}: label {r['label']} never occurs in the "
                            "training data, so the model cannot learn it. Add training rows "
                            "of that class or drop the row.")
    return Labels(list(head.label_names or [f"LABEL_{i}" for i in range(n)]))


def _is_int_text(value: str) -> bool:
    return value.strip().lstrip("-").isdigit()


def _as_class_id(value: Any, where: str, row: int) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and _is_int_text(value):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):  # a name among integer labels
        raise DataError(
            f"{where}, row {row}: label {value!r} is a name, but other labels are numbers. "
            "Use one kind: names everywhere, or ids 0..n-1 everywhere."
        )
    raise DataError(
        f"{where}, row {row}: label {value!r} is not a class id. Classification needs integer "
        "or string labels; for a numeric target set head.regression=true."
    )


def tag_labels(splits: dict[str, list[dict]], head: DictConfig, where: dict[str, str]
                ) -> Labels:
    """Map token tags to ids: string tags sorted (O first), integer tags need names."""
    for split, i, r in _rows(splits):
        if len(r["tokens"]) != len(r["tags"]):
            raise DataError(f"{where[split]}, row {i}: {len(r['tokens'])} tokens but "
                            f"{len(r['tags'])} tags")
        if not r["tokens"]:
            raise DataError(f"{where[split]}, row {i}: no tokens")
    tags = {t for _, _, r in _rows(splits) for t in r["tags"]}
    if all(isinstance(t, str) for t in tags):
        return _named_tags(splits, head, tags)
    return _tag_ids(splits, head, where)


def _named_tags(splits: dict[str, list[dict]], head: DictConfig, tags: set[str]) -> Labels:
    names = sorted(tags, key=lambda t: (t != "O", t[2:], t))
    if head.num_labels is not None and len(names) > head.num_labels:
        raise DataError(f"the data has {len(names)} tags but head.num_labels="
                        f"{head.num_labels}. Set head.num_labels={len(names)} or more.")
    ids = {name: i for i, name in enumerate(names)}
    for _, _, r in _rows(splits):
        r["tags"] = [ids[t] for t in r["tags"]]
    return Labels(names)


def _tag_ids(splits: dict[str, list[dict]], head: DictConfig, where: dict[str, str]) -> Labels:
    if not head.label_names:
        raise DataError(
            "the tags are integers, so their names are unknown. Give them with "
            "head.label_names=[O,B-PER,I-PER,...] (index = tag id) so entities can be scored."
        )
    n = len(head.label_names)
    for split, i, r in _rows(splits):
        bad = [t for t in r["tags"] if not isinstance(t, int) or not 0 <= t < n]
        if bad:
            raise DataError(f"{where[split]}, row {i}: tag {bad[0]!r} is outside 0..{n - 1} "
                            f"({n} head.label_names)")
    return Labels(list(head.label_names))

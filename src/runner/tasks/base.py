"""What every task shares: features, the evaluation state, the Task base class.

A task turns raw rows into features, pads batches, runs an evaluation step and computes
its metrics. One module per head (seqcls.py, tokencls.py, ...), each registered in
runner.config.tasks. Preprocessing follows the Hugging Face example scripts (run_glue,
run_ner, run_clm, run_translation, run_qa). Padding is dynamic: features are unpadded,
collators pad each batch to its longest row.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
from omegaconf import DictConfig
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from runner.data import cache
from runner.data.labels import Labels
from runner.errors import DataError

IGNORE = -100  # label id the losses skip
INDEX = "row_index"  # column naming each feature row, popped before the model sees a batch


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor, shift: bool = False
                     ) -> torch.Tensor:
    """Cross-entropy per example (mean over its labelled tokens). Evaluation averages these,
    so the result does not depend on how rows were batched or spread over processes."""
    if shift:  # causal LM: position t predicts token t + 1
        logits, labels = logits[:, :-1], labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits.flatten(0, -2).float(), labels.flatten(), ignore_index=IGNORE, reduction="none"
    ).view(labels.shape)
    if losses.dim() == 1:
        return losses
    mask = labels != IGNORE
    return (losses * mask).sum(-1) / mask.sum(-1).clamp(min=1)


@dataclass
class Features:
    """Tokenized splits ready for batching, plus what evaluation needs beside them."""

    train: datasets.Dataset
    validation: datasets.Dataset
    # qa: the raw validation examples and per-feature example ids / offsets
    eval_examples: list[dict] | None = None
    eval_meta: list[dict] | None = None


@dataclass
class EvalState:
    loss_sum: float = 0.0
    loss_count: int = 0
    predictions: list = field(default_factory=list)
    references: list = field(default_factory=list)
    extra: dict[str, list] = field(default_factory=dict)


def _map(ds: datasets.Dataset, fn: Callable, desc: str) -> datasets.Dataset:
    return ds.map(fn, batched=True, remove_columns=ds.column_names, desc=desc,
                  load_from_cache_file=False)


def _check_not_empty(ds: datasets.Dataset, split: str, hint: str) -> datasets.Dataset:
    if len(ds) == 0:
        raise DataError(f"the {split} split has no examples after preprocessing. {hint}")
    return ds


class Task:
    """Shared behaviour; one subclass per head."""

    name = ""
    code: tuple = ()  # modules beside this one whose code shapes the features (cache key)
    settings: tuple[str, ...] = ()  # config keys that shape this head's features (cache key)

    def __init__(self, cfg: DictConfig, tokenizer: PreTrainedTokenizerBase,
                 labels: Labels | None):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.labels = labels

    # --- features
    def features(self, raw) -> Features:
        """Tokenized splits (from the on-disk cache when the same inputs were tokenized
        before); each row carries its index (INDEX) for feature caches and QA."""
        key = cache.features_key(self.cfg, raw, self.tokenizer, code=[
            sys.modules[__name__], sys.modules[type(self).__module__], *self.code],
            settings=self.settings)
        parts = cache.load_or_build(key, lambda: self._tokenize(raw))
        return Features(train=parts["train"], validation=parts["validation"],
                        eval_meta=parts.get("eval_meta"), eval_examples=self.eval_examples(raw))

    def _tokenize(self, raw) -> dict[str, Any]:
        built = self.build_features(raw)
        parts: dict[str, Any] = {}
        for split in ("train", "validation"):
            ds = _check_not_empty(getattr(built, split), split, self.hint)
            parts[split] = ds.add_column(INDEX, list(range(len(ds))))
        if built.eval_meta is not None:
            parts["eval_meta"] = built.eval_meta
        return parts

    def eval_examples(self, raw) -> list[dict] | None:
        return None

    def split_features(self, ds: datasets.Dataset, split: str = "test") -> Features:
        """Another evaluation split (the test split, or the file `runner.evaluate` scores),
        shaped as `compute` reads it: its features in `validation`. Not cached."""
        encoded = _check_not_empty(self.encode(ds, train=False), split, self.hint)
        encoded = encoded.add_column(INDEX, list(range(len(encoded))))
        return Features(train=encoded.select([]), validation=encoded)

    def build_features(self, raw) -> Features:
        return Features(train=self.encode(raw.train, train=True),
                        validation=self.encode(raw.validation, train=False))

    hint = "Check that the rows have text in them."

    def encode(self, ds: datasets.Dataset, train: bool) -> datasets.Dataset:
        raise NotImplementedError

    def collator(self, model) -> Callable:
        return DataCollatorWithPadding(self.tokenizer)

    # --- evaluation
    def eval_step(self, model, batch: dict[str, torch.Tensor], rows: torch.Tensor,
                  accelerator) -> dict[str, Any]:
        """Run one batch (rows: the features' indices); return tensors to gather."""
        outputs = model(**batch)
        return {"loss": per_example_loss(outputs.logits, batch["labels"], shift=True)}

    @staticmethod
    def _with_references(outputs, batch: dict[str, torch.Tensor], predictions: torch.Tensor,
                         pad: int, accelerator) -> dict[str, torch.Tensor]:
        """Per-example loss, predictions and references, padded to one width so processes
        can gather them (tagging and generating tasks)."""
        predictions = accelerator.pad_across_processes(predictions, dim=1, pad_index=pad)
        references = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=IGNORE)
        return {"loss": per_example_loss(outputs.logits, batch["labels"]),
                "predictions": predictions, "references": references}

    def accumulate(self, state: EvalState, gathered: dict[str, torch.Tensor]) -> None:
        losses = gathered["loss"].float()
        state.loss_sum += float(losses.sum())
        state.loss_count += len(losses)

    def compute(self, state: EvalState, features: Features) -> dict[str, float]:
        return {"loss": state.loss_sum / max(state.loss_count, 1)}

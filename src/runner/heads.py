"""The tasks table: per head, how raw rows become features, how batches are padded, what
an evaluation step keeps, and which metrics it reports.

Preprocessing follows the Hugging Face example scripts (run_glue, run_ner, run_clm,
run_translation, run_qa). Padding is dynamic: features are unpadded, collators pad each
batch to its longest row.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import datasets
import numpy as np
import torch
from omegaconf import DictConfig
from transformers import (
    DataCollatorForSeq2Seq,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    default_data_collator,
)

from runner import cache, metrics, qa
from runner.errors import DataError
from runner.features import INDEX
from runner.models import Labels

IGNORE = -100  # label id the losses skip


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
    has_loss_in_eval = True

    def __init__(self, cfg: DictConfig, tokenizer: PreTrainedTokenizerBase,
                 labels: Labels | None):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.labels = labels

    # --- features
    def features(self, raw) -> Features:
        """Tokenized splits (from the on-disk cache when the same inputs were tokenized
        before); each row carries its index (INDEX) for feature caches and QA."""
        key = cache.features_key(self.cfg, raw, self.tokenizer, code=[sys.modules[__name__], qa])
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

    def accumulate(self, state: EvalState, gathered: dict[str, torch.Tensor]) -> None:
        losses = gathered["loss"].float()
        state.loss_sum += float(losses.sum())
        state.loss_count += len(losses)

    def compute(self, state: EvalState, features: Features) -> dict[str, float]:
        return {"loss": state.loss_sum / max(state.loss_count, 1)}


class SequenceClassification(Task):
    name = "seqcls"

    def encode(self, ds, train):
        max_length = self.cfg.data.max_length
        has_pair = "text_pair" in ds.column_names

        def tokenize(batch):
            enc = self.tokenizer(batch["text"], batch["text_pair"] if has_pair else None,
                                 truncation=True, max_length=max_length)
            enc["labels"] = batch["label"]
            return enc

        return _map(ds, tokenize, "tokenizing")

    def eval_step(self, model, batch, rows, accelerator):
        outputs = model(**batch)
        logits = outputs.logits
        preds = logits.squeeze(-1) if self.labels.regression else logits.argmax(-1)
        if self.labels.regression:
            loss = (preds.float() - batch["labels"].float()) ** 2
        else:
            loss = per_example_loss(logits, batch["labels"])
        return {"loss": loss, "predictions": preds, "references": batch["labels"]}

    def accumulate(self, state, gathered):
        super().accumulate(state, gathered)
        state.predictions.extend(gathered["predictions"].tolist())
        state.references.extend(gathered["references"].tolist())

    def compute(self, state, features):
        result = super().compute(state, features)
        if self.labels.regression:
            return {**result, **metrics.regression_metrics(state.predictions, state.references)}
        return {**result, **metrics.classification_metrics(
            state.predictions, state.references, self.labels.num_labels)}


class TokenClassification(Task):
    name = "tokencls"

    def encode(self, ds, train):
        max_length = self.cfg.data.max_length

        def tokenize(batch):
            enc = self.tokenizer(batch["tokens"], is_split_into_words=True, truncation=True,
                                 max_length=max_length)
            all_labels = []
            for i, tags in enumerate(batch["tags"]):
                previous, labels = None, []
                for word in enc.word_ids(i):
                    # Only a word's first sub-token carries its tag.
                    labels.append(IGNORE if word is None or word == previous else tags[word])
                    previous = word
                all_labels.append(labels)
            enc["labels"] = all_labels
            return enc

        return _map(ds, tokenize, "tokenizing")

    def collator(self, model):
        return DataCollatorForTokenClassification(self.tokenizer, label_pad_token_id=IGNORE)

    def eval_step(self, model, batch, rows, accelerator):
        outputs = model(**batch)
        preds = outputs.logits.argmax(-1)
        preds = accelerator.pad_across_processes(preds, dim=1, pad_index=IGNORE)
        refs = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=IGNORE)
        return {"loss": per_example_loss(outputs.logits, batch["labels"]),
                "predictions": preds, "references": refs}

    def accumulate(self, state, gathered):
        super().accumulate(state, gathered)
        names = self.labels.names
        for pred_row, ref_row in zip(gathered["predictions"].tolist(),
                                     gathered["references"].tolist(), strict=True):
            kept = [(p, r) for p, r in zip(pred_row, ref_row, strict=True) if r != IGNORE]
            state.predictions.append([names[p] for p, _ in kept])
            state.references.append([names[r] for _, r in kept])

    def compute(self, state, features):
        return {**super().compute(state, features),
                **metrics.entity_metrics(state.predictions, state.references)}


class CausalLanguageModelling(Task):
    name = "causal_lm"
    hint = "There is less text than one block: lower data.block_size or give more text."

    def encode(self, ds, train):
        block = self.cfg.data.block_size
        eos = self.tokenizer.eos_token_id

        def tokenize(batch):
            enc = self.tokenizer(batch["text"])
            if eos is not None:  # mark where one text ends and the next begins
                enc["input_ids"] = [ids + [eos] for ids in enc["input_ids"]]
                enc["attention_mask"] = [m + [1] for m in enc["attention_mask"]]
                if "token_type_ids" in enc:
                    enc["token_type_ids"] = [t + [0] for t in enc["token_type_ids"]]
            return enc

        def chunk(batch):
            joined = {k: list(chain.from_iterable(v)) for k, v in batch.items()}
            usable = (len(joined["input_ids"]) // block) * block
            out = {k: [v[i:i + block] for i in range(0, usable, block)]
                   for k, v in joined.items()}
            out["labels"] = [list(ids) for ids in out["input_ids"]]
            return out

        tokenized = _map(ds, tokenize, "tokenizing")
        # One batch for the whole split so no text is dropped between map batches.
        return tokenized.map(chunk, batched=True, batch_size=None, desc="chunking",
                             load_from_cache_file=False)

    def collator(self, model):
        return default_data_collator  # blocks all have the same length

    def compute(self, state, features):
        return metrics.language_model_metrics(state.loss_sum / max(state.loss_count, 1))


class SequenceToSequence(Task):
    name = "seq2seq"

    def encode(self, ds, train):
        prefix = self.cfg.head.source_prefix or ""
        max_length, max_target = self.cfg.data.max_length, self.cfg.head.max_target_length

        def tokenize(batch):
            enc = self.tokenizer([prefix + s for s in batch["source"]], max_length=max_length,
                                 truncation=True)
            targets = self.tokenizer(text_target=batch["target"], max_length=max_target,
                                     truncation=True)
            enc["labels"] = targets["input_ids"]
            return enc

        return _map(ds, tokenize, "tokenizing")

    def collator(self, model):
        return DataCollatorForSeq2Seq(self.tokenizer, model=model, label_pad_token_id=IGNORE)

    def eval_step(self, model, batch, rows, accelerator):
        outputs = model(**batch)
        generator = accelerator.unwrap_model(model)
        generated = generator.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            max_new_tokens=self.cfg.head.max_target_length, num_beams=self.cfg.head.num_beams)
        pad = self.tokenizer.pad_token_id
        generated = accelerator.pad_across_processes(generated, dim=1, pad_index=pad)
        refs = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=IGNORE)
        return {"loss": per_example_loss(outputs.logits, batch["labels"]),
                "predictions": generated, "references": refs}

    def accumulate(self, state, gathered):
        super().accumulate(state, gathered)
        pad = self.tokenizer.pad_token_id
        refs = gathered["references"].masked_fill(gathered["references"] == IGNORE, pad)
        decode = self.tokenizer.batch_decode
        state.predictions.extend(s.strip() for s in decode(gathered["predictions"],
                                                            skip_special_tokens=True))
        state.references.extend(s.strip() for s in decode(refs, skip_special_tokens=True))

    def compute(self, state, features):
        return {**super().compute(state, features),
                **metrics.bleu_metrics(state.predictions, state.references)}


class QuestionAnswering(Task):
    name = "qa"
    has_loss_in_eval = False
    hint = "Check the questions and contexts, and data.max_length / head.doc_stride."

    def build_features(self, raw):
        max_length, stride = self.cfg.data.max_length, self.cfg.head.doc_stride
        if stride >= max_length:
            raise DataError(f"head.doc_stride={stride} must be smaller than data.max_length="
                            f"{max_length}")
        tok = self.tokenizer
        for split, ds in (("train", raw.train), ("validation", raw.validation)):
            self._check_room_for_context(ds, split, max_length, stride)
        train = raw.train.map(
            lambda b: qa.prepare_train_features(b, tok, max_length, stride), batched=True,
            remove_columns=raw.train.column_names, desc="tokenizing", load_from_cache_file=False)
        val = raw.validation.map(
            lambda b: qa.prepare_eval_features(b, tok, max_length, stride), batched=True,
            remove_columns=raw.validation.column_names, desc="tokenizing",
            load_from_cache_file=False)
        meta = [{"example_id": e, "offset_mapping": o}
                for e, o in zip(val["example_id"], val["offset_mapping"], strict=True)]
        return Features(train=train,
                        validation=val.remove_columns(["example_id", "offset_mapping"]),
                        eval_meta=meta)

    def eval_examples(self, raw):
        return raw.validation.select_columns(["id", "context", "answers"]).to_list()

    def _check_room_for_context(self, ds, split: str, max_length: int, stride: int) -> None:
        """Windows hold question + context; the context part must exceed the stride."""
        lengths = [len(ids) for ids in self.tokenizer(list(ds["question"]))["input_ids"]]
        row = max(range(len(lengths)), key=lengths.__getitem__)
        room = max_length - lengths[row] - 2  # the separator tokens of a pair
        if room <= stride:
            raise DataError(
                f"{split} row {row + 1}: the question takes {lengths[row]} tokens, leaving "
                f"{room} of data.max_length={max_length} for the context, not more than "
                f"head.doc_stride={stride}. Raise data.max_length or lower head.doc_stride.")

    def eval_step(self, model, batch, rows, accelerator):
        outputs = model(**batch)
        start = accelerator.pad_across_processes(outputs.start_logits, dim=1,
                                                 pad_index=float("-inf"))
        end = accelerator.pad_across_processes(outputs.end_logits, dim=1,
                                               pad_index=float("-inf"))
        return {"start": start, "end": end, "index": rows}

    def accumulate(self, state, gathered):
        state.extra.setdefault("index", []).extend(gathered["index"].tolist())
        state.extra.setdefault("start", []).extend(gathered["start"].float().cpu().numpy())
        state.extra.setdefault("end", []).extend(gathered["end"].float().cpu().numpy())

    def compute(self, state, features):
        order = np.argsort(state.extra["index"], kind="stable")
        indices = [state.extra["index"][i] for i in order]
        meta = [features.eval_meta[i] for i in indices]
        starts = [state.extra["start"][i] for i in order]
        ends = [state.extra["end"][i] for i in order]
        predictions = qa.postprocess_predictions(
            features.eval_examples, meta, starts, ends, n_best=self.cfg.head.n_best,
            max_answer_length=self.cfg.head.max_answer_length)
        references = {e["id"]: list(e["answers"]["text"]) for e in features.eval_examples}
        return metrics.squad_metrics(predictions, references)


TASKS: dict[str, type[Task]] = {
    t.name: t for t in (SequenceClassification, TokenClassification, CausalLanguageModelling,
                        SequenceToSequence, QuestionAnswering)
}


def task_for(cfg: DictConfig, tokenizer: PreTrainedTokenizerBase, labels: Labels | None) -> Task:
    return TASKS[cfg.head.task](cfg, tokenizer, labels)

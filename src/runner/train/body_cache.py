"""Frozen-body feature caching: run a fully frozen body once per example, then train the
head on its stored outputs every epoch and evaluate on them too.

It is exact, and used only then: the body must be entirely frozen and in eval mode (no
dropout), so its output for an example never changes. The task model's own forward still
runs (head, pooling, loss); only the body's forward is replaced by a lookup, so nothing
about the head is re-implemented. The model's modules and weights stay untouched, so
checkpoints and the saved model are the same as without the cache.

What is stored per example depends on what the head reads from the body:
  pooled    BERT's pooler output (sequence classification, head.pooling=pooler)
  first     the first token's state (head.pooling=cls: RoBERTa / DistilBERT natively)
  last      the last real token's state (head.pooling=last: GPT-2 natively)
  mean, max the mean / maximum of the token states (head.pooling=mean | max)
  sequence  every position, padded to the split's longest row so each position matches
            what the body gives under any batch padding (token classification, QA)
A sequence classifier's kind follows its head.pooling; with runner's pooled classes the
stored vector is the model's own pooling function applied to the body's output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from runner.config.families import FAMILIES, pooling_of
from runner.config.tasks import TASKS
from runner.model.pooled import pool

# head.pooling -> the kind stored (a family's native pooling maps to its registry kind)
POOLING_KINDS = {"pooler": "pooled", "cls": "first", "last": "last", "mean": "mean",
                 "max": "max"}
VECTOR_KINDS = ("first", "last", "mean", "max")  # one vector per row, read at any position

log = logging.getLogger(__name__)


class _RegistryKinds(Mapping):
    """(family, head) -> what the head reads from the body's output, read live from the
    task registry (`TASKS[head].body_cache[family]`), so a registered head is covered with
    no second table to edit."""

    def __getitem__(self, key: tuple[str, str]) -> str:
        family, head = key
        spec = TASKS.get(head)
        if spec is None or family not in spec.body_cache:
            raise KeyError(key)
        return spec.body_cache[family]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((family, head) for head, spec in TASKS.items() for family in spec.body_cache)

    def __len__(self) -> int:
        return sum(len(spec.body_cache) for spec in TASKS.values())


KINDS = _RegistryKinds()
INDEX = "row_index"  # column naming each feature row, popped before the model sees a batch


def kind_for(cfg: DictConfig) -> str | None:
    """What the frozen-body cache stores for this run's family and head (None: not covered)."""
    spec = TASKS.get(cfg.head.task)
    kind = spec.body_cache.get(cfg.model.family) if spec is not None else None
    head = FAMILIES[cfg.model.family].heads.get(cfg.head.task)
    if kind is None or head is None or not head.pooling:
        return kind
    return POOLING_KINDS[pooling_of(cfg)[0]]


def covered() -> str:
    """The heads and families the cache covers, as a reader would say it."""
    heads_by_families: dict[tuple[str, ...], list[str]] = {}
    for head, spec in TASKS.items():
        if spec.body_cache:
            heads_by_families.setdefault(tuple(spec.body_cache), []).append(head)
    return "; ".join(f"{_and(heads)} on {_and(list(families))}"
                     for families, heads in heads_by_families.items())


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def why_not(cfg: DictConfig, plan, body_prefix: str) -> str | None:
    """None if the cache is exact for this run, else the reason it is not used."""
    if not cfg.trainer.cache_features:
        return "trainer.cache_features=false"
    if kind_for(cfg) is None:
        return f"not available for {cfg.model.family} x {cfg.head.task} (covered: {covered()})"
    if not cfg.trainer.frozen_eval_mode:
        return "trainer.frozen_eval_mode=false: dropout in the frozen body changes its outputs"
    trainable_body = [d.param.name for d in plan.decisions
                      if d.trainable and d.param.name.startswith(body_prefix + ".")]
    if trainable_body:
        return (f"the body is not entirely frozen under freeze={plan.strategy} "
                f"({len(trainable_body)} trainable body tensors, e.g. {trainable_body[0]})")
    return None


def _model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")}


def _last_real_token(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """The position GPT-2's classifier reads: the last token that is not padding."""
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id).int()).argmax(-1)


def _pad_to(batch: dict, length: int, pad_token_id: int) -> dict:
    missing = length - batch["input_ids"].shape[1]
    if missing <= 0:
        return batch
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0}
    return {k: torch.nn.functional.pad(v, (0, missing), value=fill[k]) for k, v in batch.items()}


@dataclass
class FeatureStore:
    kind: str
    splits: dict[str, torch.Tensor]  # split -> [rows, hidden] or [rows, positions, hidden]
    output_type: type

    @property
    def megabytes(self) -> float:
        return sum(t.numel() * t.element_size() for t in self.splits.values()) / 2**20


def estimate_megabytes(kind: str, rows: int, longest: int, hidden: int) -> float:
    per_row = hidden * (longest if kind == "sequence" else 1)
    return rows * per_row * 4 / 2**20


def _values(out, kind: str, inputs: dict, pad_token_id: int, pooling: str | None
            ) -> torch.Tensor:
    """What the head reads from the body's output `out`."""
    if pooling is not None:  # runner's pooled class: its own pooling, exactly
        return pool(out.last_hidden_state, inputs["attention_mask"], pooling)
    if kind == "pooled":
        return out.pooler_output
    if kind == "first":
        return out.last_hidden_state[:, 0]
    if kind == "last":  # GPT-2's rule: the rightmost token that is not padding
        last = _last_real_token(inputs["input_ids"], pad_token_id)
        return out.last_hidden_state[torch.arange(len(last)), last]
    if kind == "sequence":
        return out.last_hidden_state
    raise ValueError(f"the {kind!r} features come from runner's pooled classes only")


def frozen_inputs(loaders: dict, pad_token_id: int, device, pad_rows: bool
                  ) -> Iterator[tuple[str, torch.Tensor, dict]]:
    """(split, row index, model inputs on the device) for every evaluation batch of every
    split: what a frozen part runs on once. pad_rows pads each batch to its split's longest
    row, so every stored position matches what the model computes under any batch padding."""
    for split, (loader, _, longest) in loaders.items():
        for batch in loader:
            index = batch.pop(INDEX)
            inputs = _model_inputs(batch)
            if pad_rows:
                inputs = _pad_to(inputs, longest, pad_token_id)
            yield split, index, {k: v.to(device) for k, v in inputs.items()}


@torch.no_grad()
def compute(body, kind: str, loaders: dict, pad_token_id: int, accelerator,
            pooling: str | None = None) -> FeatureStore:
    """Run the frozen body once over every split (batches from the evaluation collator).
    `pooling`: the pooling of runner's pooled class around the body (None: a native head)."""
    body.eval()
    splits, output_type = {}, None
    for split, index, inputs in frozen_inputs(loaders, pad_token_id, accelerator.device,
                                              pad_rows=kind == "sequence"):
        with accelerator.autocast():
            out = body(**inputs)
        output_type = type(out)
        values = _values(out, kind, inputs, pad_token_id, pooling).float().cpu()
        if split not in splits:
            splits[split] = torch.zeros((loaders[split][1], *values.shape[1:]),
                                        dtype=torch.float32)
        splits[split][index] = values
    return FeatureStore(kind, splits, output_type)


class Replay:
    """Stands in for the body's forward: returns the stored outputs of the selected rows."""

    def __init__(self, store: FeatureStore, pad_token_id: int, device: torch.device):
        self.store, self.pad_token_id, self.device = store, pad_token_id, device
        self.split, self.rows = "train", None

    def select(self, split: str, rows: torch.Tensor) -> None:
        self.split, self.rows = split, rows.cpu()

    def __call__(self, input_ids=None, attention_mask=None, **ignored):
        values = self.store.splits[self.split][self.rows].to(self.device)
        kind, make = self.store.kind, self.store.output_type
        if kind == "pooled":
            dummy = values.new_zeros((values.shape[0], 1, values.shape[1]))
            return make(last_hidden_state=dummy, pooler_output=values)
        if kind in VECTOR_KINDS:
            # The stored vector at every position (a view, no copy): whichever position the
            # head reads (first, last real token) and any pooling over the attention mask
            # (mean, max) gives the vector back.
            return make(last_hidden_state=values[:, None, :].expand(
                -1, input_ids.shape[1], -1))
        return make(last_hidden_state=values[:, : input_ids.shape[1]])

    def stand_ins(self, body) -> list[tuple[torch.nn.Module, Callable]]:
        return [(body, self)]


@contextmanager
def replaying(body, replay) -> Iterator[None]:
    """Route forwards to the replay's stand-ins for the duration: the body's (this cache)
    or the frozen prefix's (runner.train.prefix_cache). Instance attributes, so the module
    tree, its weights and its state_dict are untouched."""
    if replay is None:
        yield
        return
    stand_ins = replay.stand_ins(body)
    for module, forward in stand_ins:
        module.forward = forward
    try:
        yield
    finally:
        for module, _ in stand_ins:
            del module.forward

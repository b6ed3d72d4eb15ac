"""Extractive question answering (SQuAD style): features in, answer texts out.

Reproduces the behaviour of the Hugging Face `run_qa.py` example. A long context is split
into overlapping windows ("features") of at most `max_length` tokens that share `doc_stride`
tokens with their neighbour, so one example may yield several features:

- training features carry the answer's start/end token indices, or the CLS index (0 without a
  CLS token) when the answer is not wholly inside the window;
- evaluation features keep the character offsets of their context tokens, which
  `postprocess_predictions` uses to turn the best start/end logits back into context text.

Features are not padded: a collator pads each batch to its longest row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np

Offsets = Sequence[Sequence[int] | None]


def prepare_train_features(
    examples: dict[str, list], tokenizer: Any, max_length: int, doc_stride: int
) -> dict[str, list]:
    """Tokenize a batch of examples into training windows labelled with answer token spans.

    Meant for `datasets.Dataset.map(batched=True, remove_columns=...)`: one example may give
    several features, so the example columns must be removed.
    """
    encoded = _tokenize(examples, tokenizer, max_length, doc_stride)
    context_index = _context_sequence_index(tokenizer)
    start_positions, end_positions = [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        answers = examples["answers"][encoded["overflow_to_sample_mapping"][i]]
        null_index = no_answer_index(encoded["input_ids"][i], tokenizer)
        span = _answer_token_span(answers, offsets, encoded.sequence_ids(i), context_index)
        start, end = span if span is not None else (null_index, null_index)
        start_positions.append(start)
        end_positions.append(end)
    features = _model_inputs(encoded)
    features["start_positions"] = start_positions
    features["end_positions"] = end_positions
    return features


def prepare_eval_features(
    examples: dict[str, list], tokenizer: Any, max_length: int, doc_stride: int
) -> dict[str, list]:
    """Tokenize a batch of examples into evaluation windows that remember their example.

    Each feature keeps `example_id` and an `offset_mapping` that is None except on context
    tokens, so that postprocessing can only ever pick answers from the context.
    """
    encoded = _tokenize(examples, tokenizer, max_length, doc_stride)
    context_index = _context_sequence_index(tokenizer)
    example_ids, offset_mappings = [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        example_ids.append(examples["id"][encoded["overflow_to_sample_mapping"][i]])
        sequence_ids = encoded.sequence_ids(i)
        offset_mappings.append(
            [
                tuple(offset) if sequence_id == context_index else None
                for offset, sequence_id in zip(offsets, sequence_ids, strict=True)
            ]
        )
    features = _model_inputs(encoded)
    features["example_id"] = example_ids
    features["offset_mapping"] = offset_mappings
    return features


def postprocess_predictions(
    examples: Iterable[Mapping[str, Any]],
    features: Iterable[Mapping[str, Any]],
    start_logits: Sequence[Any],
    end_logits: Sequence[Any],
    n_best: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float | None = None,
) -> dict[str, str]:
    """The best-scoring answer text of every example: `{example id: answer}`.

    For each feature of an example, every pair of its `n_best` highest start and end logits
    that forms a valid context span (end not before start, at most `max_answer_length`
    tokens) is scored by start + end logit; the best span over all the example's features
    wins. Logits may be longer than a feature's offsets (padded batches): the padding is
    ignored. An example without any valid span gets "". Surrounding whitespace is stripped
    from the answer, because some tokenizers (GPT-2's byte-level BPE, SentencePiece) give
    offsets that include the space in front of a word.

    With `null_score_diff_threshold` (SQuAD v2, as run_qa.py's --version_2_with_negative),
    each feature also scores "no answer" by the logits at its `cls_index` (the position
    unanswerable training windows point at); the example's lowest such score is its null
    score, and "" is the answer when that beats the best span's score by more than the
    threshold.
    """
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(
            f"n_best ({n_best}) and max_answer_length ({max_answer_length}) must be at least 1"
        )
    if len(start_logits) != len(end_logits):
        raise ValueError(
            f"got {len(start_logits)} start logits arrays but {len(end_logits)} end logits arrays"
        )
    offsets_by_example = group_by_example(features)
    n_features = sum(len(v) for v in offsets_by_example.values())
    if n_features != len(start_logits):
        raise ValueError(
            f"got {n_features} features but {len(start_logits)} logits arrays; "
            "there must be one per feature, in the same order"
        )
    examples = list(examples)  # read twice: once for the spans, once for their text
    spans = best_spans(examples, offsets_by_example, start_logits, end_logits, n_best,
                       max_answer_length, null_score_diff_threshold)
    answers = {}
    for example in examples:
        span = spans[example["id"]]
        answers[example["id"]] = (
            example["context"][span.start_char : span.end_char].strip() if span else ""
        )
    return answers


def best_spans(
    examples: Iterable[Mapping[str, Any]],
    offsets_by_example: Mapping[str, list[tuple[int, Offsets, int]]],
    start_logits: Sequence[Any],
    end_logits: Sequence[Any],
    n_best: int,
    max_answer_length: int,
    null_score_diff_threshold: float | None = None,
) -> dict[str, Span | None]:
    """Each example's best-scoring span over its features (`offsets_by_example`, as
    `offsets_by_example` groups them), None where it has none or "no answer" wins."""
    found: dict[str, Span | None] = {}
    for example in examples:
        features_of = offsets_by_example.get(example["id"], [])
        spans = (
            _best_span(
                np.asarray(start_logits[feature_index])[: len(offsets)],
                np.asarray(end_logits[feature_index])[: len(offsets)],
                offsets,
                n_best,
                max_answer_length,
            )
            for feature_index, offsets, _ in features_of
        )
        best = max(
            (span for span in spans if span is not None), key=attrgetter("score"), default=None
        )
        if null_score_diff_threshold is not None and best is not None and features_of:
            null = min(float(start_logits[i][cls] + end_logits[i][cls])
                       for i, _, cls in features_of)
            if null - best.score > null_score_diff_threshold:
                best = None
        found[example["id"]] = best
    return found


@dataclass(frozen=True)
class Span:
    score: float
    start_char: int
    end_char: int


def _tokenize(examples: dict[str, list], tokenizer: Any, max_length: int, doc_stride: int) -> Any:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"question answering needs a fast tokenizer (for offset mappings); "
            f"{type(tokenizer).__name__} is not one"
        )
    if not 0 <= doc_stride < max_length:
        raise ValueError(f"doc_stride ({doc_stride}) must be in [0, max_length={max_length})")
    # Leading spaces in questions waste window room and trip up some tokenizers.
    questions = [question.lstrip() for question in examples["question"]]
    contexts = examples["context"]
    context_first = tokenizer.padding_side == "left"
    return tokenizer(
        contexts if context_first else questions,
        questions if context_first else contexts,
        truncation="only_first" if context_first else "only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )


def _context_sequence_index(tokenizer: Any) -> int:
    """Which sequence of the pair is the context: the second, unless the tokenizer pads left."""
    return 0 if tokenizer.padding_side == "left" else 1


def _model_inputs(encoded: Any) -> dict[str, list]:
    """The tokenizer's outputs that the model takes (input_ids, attention_mask, ...)."""
    bookkeeping = ("offset_mapping", "overflow_to_sample_mapping")
    return {key: list(value) for key, value in encoded.items() if key not in bookkeeping}


def no_answer_index(input_ids: list[int], tokenizer: Any) -> int:
    """Where unanswerable windows point: the CLS token, or 0 for tokenizers without one."""
    cls_token_id = tokenizer.cls_token_id
    return input_ids.index(cls_token_id) if cls_token_id in input_ids else 0


def _answer_token_span(
    answers: Mapping[str, list],
    offsets: Sequence[Sequence[int]],
    sequence_ids: list[int | None],
    context_index: int,
) -> tuple[int, int] | None:
    """Token indices of the first gold answer, or None when it is not wholly in this window."""
    if not answers["answer_start"]:
        return None
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    context_tokens = [i for i, s in enumerate(sequence_ids) if s == context_index]
    if not context_tokens:
        return None
    first, last = context_tokens[0], context_tokens[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return None
    # The answer starts in the last token that starts at or before it, and ends in the first
    # token that ends at or after it.
    start = max(i for i in range(first, last + 1) if offsets[i][0] <= start_char)
    end = min(i for i in range(first, last + 1) if offsets[i][1] >= end_char)
    return start, end


def group_by_example(
    features: Iterable[Mapping[str, Any]],
) -> dict[str, list[tuple[int, Offsets, int]]]:
    """Each example's features as (feature index, offset mapping, no-answer index), read in
    a single pass."""
    grouped: dict[str, list[tuple[int, Offsets, int]]] = defaultdict(list)
    for index, feature in enumerate(features):
        grouped[feature["example_id"]].append(
            (index, feature["offset_mapping"], feature.get("cls_index", 0)))
    return grouped


def _best_span(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: Offsets,
    n_best: int,
    max_answer_length: int,
) -> Span | None:
    """The highest-scoring valid span of one feature, or None if it has none."""
    best: Span | None = None
    top_ends = _top_indices(end_logits, n_best)
    for start in _top_indices(start_logits, n_best):
        for end in top_ends:
            if not _is_valid_span(start, end, offsets, max_answer_length):
                continue
            score = float(start_logits[start] + end_logits[end])
            if best is None or score > best.score:
                best = Span(score, offsets[start][0], offsets[end][1])
    return best


def _top_indices(logits: np.ndarray, n: int) -> list[int]:
    """Indices of the n largest logits, largest first (ties: lower index first)."""
    return np.argsort(-logits, kind="stable")[:n].tolist()


def _is_valid_span(start: int, end: int, offsets: Offsets, max_answer_length: int) -> bool:
    if start >= len(offsets) or end >= len(offsets):
        return False
    if offsets[start] is None or offsets[end] is None:
        return False
    return start <= end < start + max_answer_length

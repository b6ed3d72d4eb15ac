"""Evaluation metrics per head, computed by maintained libraries.

torchmetrics scores classification, MSE and SQuAD, scipy correlation, sacrebleu scores
translation and seqeval scores token classification; this module only validates the
inputs, adapts them to each library's calling convention and returns plain Python floats
(ready for MLflow). Every fraction is on 0-1; BLEU stays 0-100 as sacrebleu reports it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import sacrebleu
import scipy.stats
import seqeval.metrics
import torch
from torchmetrics.functional import mean_squared_error
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score
from torchmetrics.functional.text.squad import squad


def classification_metrics(predictions: Any, references: Any, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-averaged F1 of integer class predictions.

    The macro average is torchmetrics': a class absent from both predictions and references
    (no true positive, false positive or false negative) is left out of the mean, while a class
    that occurs but is never predicted counts with F1 = 0.
    """
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}")
    preds = _as_label_tensor(predictions, "predictions")
    target = _as_label_tensor(references, "references")
    _check_same_length(len(preds), len(target))
    _check_labels_in_range(preds, num_labels, "predictions")
    _check_labels_in_range(target, num_labels, "references")
    return {
        "accuracy": float(multiclass_accuracy(preds, target, num_labels, average="micro")),
        "f1_macro": float(multiclass_f1_score(preds, target, num_labels, average="macro")),
    }


def regression_metrics(predictions: Any, references: Any) -> dict[str, float]:
    """Pearson and Spearman correlation (the GLUE STS-B convention) and mean squared error;
    both inputs are flattened, so (N, 1) model outputs fit (N,) targets.

    A correlation needs two or more pairs and is NaN when either side is constant (no
    variance to correlate), as scipy defines it. scipy, not torchmetrics: torchmetrics'
    Spearman adds an epsilon (a perfect rank order scores 0.999998, not 1).
    """
    preds = _as_float_tensor(predictions, "predictions")
    target = _as_float_tensor(references, "references")
    _check_same_length(len(preds), len(target))
    constant = len(preds) < 2 or bool(preds.std() == 0) or bool(target.std() == 0)
    return {
        "pearson": math.nan if constant else float(scipy.stats.pearsonr(preds, target)[0]),
        "spearman": math.nan if constant else float(scipy.stats.spearmanr(preds, target)[0]),
        "mse": float(mean_squared_error(preds, target)),
    }


def language_model_metrics(mean_loss: float) -> dict[str, float]:
    """Mean token cross-entropy and its perplexity (inf when exp overflows, early in training)."""
    try:
        perplexity = math.exp(mean_loss)
    except OverflowError:
        perplexity = math.inf
    return {"loss": float(mean_loss), "perplexity": float(perplexity)}


def bleu_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (0-100, sacrebleu defaults: 13a tokenisation, exp smoothing), one reference each.

    Sentences shorter than four tokens have no 4-grams, so even a perfect copy of them scores 0.
    """
    _check_not_empty(predictions, "predictions")
    _check_same_length(len(predictions), len(references))
    _check_all_strings(predictions, "predictions")
    _check_all_strings(references, "references")
    score = sacrebleu.corpus_bleu(list(predictions), [list(references)]).score
    return {"bleu": float(score)}


def squad_metrics(
    predictions: dict[str, str], references: dict[str, list[str]], no_answer: bool = False
) -> dict[str, float]:
    """SQuAD v1.1 exact match and F1 (fractions, 0-1, like every other fraction runner
    reports; the official script prints them x100), each the max over an example's gold answers.

    Answers are normalised (lower-cased, punctuation and the articles a/an/the removed,
    whitespace collapsed) before comparing. One known difference from the official v1.1
    script, inherited from torchmetrics: when a prediction and a gold answer both normalise to
    nothing (e.g. "" against "the"), F1 is 1 for that pair where the official script gives 0.

    With `no_answer` (SQuAD v2) an example without gold answers is scored against "", as
    the official v2 script does: exact match and F1 are 1 when the prediction is "" (or
    normalises to nothing), else 0.
    """
    _check_not_empty(predictions, "predictions")
    _check_same_ids(predictions, references)
    if no_answer:
        references = {i: list(answers) or [""] for i, answers in references.items()}
    for example_id, answers in references.items():
        if isinstance(answers, str) or not answers:
            raise ValueError(
                f"references[{example_id!r}] must be a non-empty list of gold answers, "
                f"got {answers!r}"
            )
    # Scored one example at a time and averaged here: torchmetrics sums a whole batch in
    # float32, which drifts from the official numbers by ~0.001 points on 20k examples.
    scores = [_squad_example_scores(i, predictions[i], references[i]) for i in references]
    return {
        "exact_match": statistics.fmean(em for em, _ in scores),
        "f1": statistics.fmean(f1 for _, f1 in scores),
    }


def _squad_example_scores(
    example_id: str, prediction: str, answers: list[str]
) -> tuple[float, float]:
    """(exact match, F1) of one prediction, each 0-1 (torchmetrics gives 0-100)."""
    # torchmetrics reads only answers["text"]; answer_start is part of the SQuAD format it expects.
    target = {
        "id": example_id,
        "answers": {"text": list(answers), "answer_start": [-1] * len(answers)},
    }
    scores = squad({"id": example_id, "prediction_text": prediction}, target)
    return float(scores["exact_match"]) / 100, float(scores["f1"]) / 100


def entity_metrics(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 (0-1) plus token accuracy, from IOB2 tag sequences.

    seqeval's default (conlleval-compatible) mode is used: an entity may also start with an
    I- tag, as it does in raw model output; precision is 0 when nothing is predicted.
    """
    _check_not_empty(predictions, "predictions")
    _check_same_length(len(predictions), len(references))
    for index, (predicted, gold) in enumerate(zip(predictions, references, strict=True)):
        if len(predicted) != len(gold):
            raise ValueError(
                f"sequence {index} has {len(predicted)} predicted tags "
                f"but {len(gold)} reference tags"
            )
    if not any(predictions):
        raise ValueError("all sequences are empty: there are no tags to score")
    y_true, y_pred = [list(s) for s in references], [list(s) for s in predictions]
    return {
        "precision": float(seqeval.metrics.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(seqeval.metrics.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(seqeval.metrics.f1_score(y_true, y_pred, zero_division=0)),
        "accuracy": float(seqeval.metrics.accuracy_score(y_true, y_pred)),
    }


def _as_label_tensor(values: Any, name: str) -> torch.Tensor:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class ids, got shape {array.shape}")
    _check_not_empty(array, name)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integer class ids, got dtype {array.dtype}")
    return torch.as_tensor(array, dtype=torch.long)


def _as_float_tensor(values: Any, name: str) -> torch.Tensor:
    # float64 so the error of large targets is not rounded away in float32.
    array = np.asarray(values, dtype=np.float64).ravel()
    _check_not_empty(array, name)
    return torch.as_tensor(array)


def _check_not_empty(values: Sequence[Any] | np.ndarray | dict[str, Any], name: str) -> None:
    if len(values) == 0:
        raise ValueError(f"{name} is empty: there is nothing to score")


def _check_same_length(n_predictions: int, n_references: int) -> None:
    if n_predictions != n_references:
        raise ValueError(
            f"got {n_predictions} predictions but {n_references} references; "
            "they must pair up one to one"
        )


def _check_labels_in_range(labels: torch.Tensor, num_labels: int, name: str) -> None:
    out_of_range = torch.unique(labels[(labels < 0) | (labels >= num_labels)]).tolist()
    if out_of_range:
        raise ValueError(f"{name} contain class ids {out_of_range} outside 0..{num_labels - 1}")


def _check_all_strings(texts: Sequence[Any], name: str) -> None:
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{index}] must be a string, got {type(text).__name__}")


def _check_same_ids(predictions: dict[str, str], references: dict[str, list[str]]) -> None:
    unreferenced = sorted(set(predictions) - set(references))
    unanswered = sorted(set(references) - set(predictions))
    problems = []
    if unreferenced:
        problems.append(f"ids predicted but missing from references: {_few(unreferenced)}")
    if unanswered:
        problems.append(f"ids in references but not predicted: {_few(unanswered)}")
    if problems:
        raise ValueError("; ".join(problems))


def _few(ids: list[str], shown: int = 10) -> str:
    """The first ids of a possibly long list, so an error message stays readable."""
    listed = ", ".join(repr(i) for i in ids[:shown])
    return listed if len(ids) <= shown else f"{listed} and {len(ids) - shown} more"

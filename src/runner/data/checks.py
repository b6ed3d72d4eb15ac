"""Row checks after column mapping, before any model exists: texts present, and extractive
QA answers that are real spans of their context. Each problem names the file and row."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from runner.errors import DataError

TEXT_ROLES = ("text", "text_pair", "question", "context", "source", "target")


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        type(value).__name__ == "NAType")


def _check_texts(rows: list[dict], where: str) -> None:
    for i, row in enumerate(rows, 1):
        for role in (r for r in TEXT_ROLES if r in row):
            value = row[role]
            if _is_null(value):
                if role == "text_pair":
                    continue  # sentence pairs may leave the second one out
                raise DataError(f"{where}, row {i}: the {role} is missing (null). Every row "
                                f"needs its {role}; fix or drop the row.")
            if isinstance(value, (int, float)):
                row[role] = str(value)  # a number in a text column is its text
            elif not isinstance(value, str):
                raise DataError(f"{where}, row {i}: the {role} is a {type(value).__name__} "
                                f"({str(value)[:80]}), not text. Fix or drop the row.")
        tokens = row.get("tokens")
        if tokens is not None and (not isinstance(tokens, list)
                                   or not all(isinstance(t, str) for t in tokens)):
            raise DataError(f"{where}, row {i}: tokens must be a list of strings, got "
                            f"{str(tokens)[:80]}. Fix or drop the row.")


def _check_answers(rows: list[dict], where: str, no_answer: bool) -> None:
    """Every gold answer is the text at answer_start in its context (SQuAD's promise).
    Rows without an answer are SQuAD v2's unanswerable questions."""
    for i, row in enumerate(rows, 1):
        answers, context = row["answers"], row["context"]
        if not isinstance(answers, dict) or not {"text", "answer_start"} <= set(answers):
            raise DataError(f"{where}, row {i}: answers must be {{\"text\": [...], "
                            f"\"answer_start\": [...]}}, got {answers!r}")
        texts, starts = list(answers["text"]), list(answers["answer_start"])
        if len(texts) != len(starts):
            raise DataError(f"{where}, row {i}: {len(texts)} answer texts but {len(starts)} "
                            "answer_start values")
        if not texts and not no_answer:
            raise DataError(f"{where}, row {i}: the question has no answer (SQuAD v2's "
                            "unanswerable questions). Set head.version_2_with_negative=true "
                            "to train and score with a no-answer option, or drop the row.")
        for text, start in zip(texts, starts, strict=True):
            if isinstance(start, bool) or not isinstance(start, int) or not (
                    0 <= start <= len(context) - len(text)):
                raise DataError(f"{where}, row {i}: answer_start {start!r} of the answer "
                                f"{text!r} is outside its context ({len(context)} "
                                "characters). Fix the offset (characters from the context's "
                                "start) or drop the row.")
            if context[start:start + len(text)] != text:
                raise DataError(f"{where}, row {i}: the answer {text!r} is not the text at "
                                f"answer_start {start} of its context (found "
                                f"{context[start:start + len(text)]!r}). Fix the offset or "
                                "the answer text.")


def check_rows(splits: dict[str, list[dict]], head: DictConfig, where: dict[str, str]) -> None:
    for split, rows in splits.items():
        _check_texts(rows, where[split])
        if head.task == "qa":
            _check_answers(rows, where[split], bool(head.version_2_with_negative))

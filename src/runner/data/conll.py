"""CoNLL-style column files, as CoNLL-2003 and GermEval 2014 are distributed: one token per
line with its tags in columns, a blank line between sentences, `-DOCSTART-` lines between
documents, and (GermEval) `#` comment lines before each sentence.

Columns: a leading column of positions (GermEval's 1, 2, 3, ...) is skipped; the token is
the first column after it; the tag is the last column (CoNLL-2003: token POS chunk NER), or
with a position column the one after the token (GermEval: position token outer inner).
`data.column_names=[...]` names the columns instead; `tokens` and `ner_tags` are used.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from runner.errors import DataError

Line = tuple[int, list[str]]  # (line number, fields)


def _fields(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def _sentences(path: Path) -> list[list[Line]]:
    sentences: list[list[Line]] = [[]]
    with path.open(encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\n\r")
            if not line.strip() or line.startswith("-DOCSTART-"):
                if sentences[-1]:
                    sentences.append([])
                continue
            sentences[-1].append((number, [x.strip() for x in _fields(line)]))
    return [s for s in sentences if s]


def _token_and_tag_columns(lines: list[Line], width: int, names: list[str] | None,
                           path: Path) -> tuple[int, int]:
    if names:
        if len(names) != width:
            raise DataError(f"{path}: data.column_names has {len(names)} names but the lines "
                            f"have {width} columns")
        missing = [n for n in ("tokens", "ner_tags") if n not in names]
        if missing:
            raise DataError(f"{path}: data.column_names={names} names no {missing[0]} column. "
                            "Call the token column tokens and the tag column ner_tags.")
        return names.index("tokens"), names.index("ner_tags")
    if width < 2:
        raise DataError(f"{path}, line {lines[0][0]}: one column only; a CoNLL file needs a "
                        "token and its tag on each line")
    positions = width >= 3 and all(fields[0].isdigit() for _, fields in lines)
    return (1, 2) if positions else (0, width - 1)


def read_conll(path: Path, column_names: list[str] | None = None) -> list[dict]:
    """A row per sentence: {"tokens": [...], "ner_tags": [...]}."""
    sentences = _sentences(path)
    if not sentences:
        raise DataError(f"{path}: no token lines (a CoNLL file has a token and its tag per "
                        "line)")
    width = Counter(len(f) for s in sentences for _, f in s).most_common(1)[0][0]
    # GermEval's comment lines ("#\t<source> [date]") have fewer columns than tokens.
    sentences = [kept for s in sentences
                 if (kept := [(n, f) for n, f in s if not (f[0].startswith("#")
                                                           and len(f) != width)])]
    lines = [line for sentence in sentences for line in sentence]
    for number, fields in lines:
        if len(fields) != width:
            raise DataError(f"{path}, line {number}: {len(fields)} columns where the file has "
                            f"{width}. Each line holds a token and its tags; fix or remove "
                            "that line.")
    token_at, tag_at = _token_and_tag_columns(lines, width, column_names, path)
    return [{"tokens": [f[token_at] for _, f in s], "ner_tags": [f[tag_at] for _, f in s]}
            for s in sentences]

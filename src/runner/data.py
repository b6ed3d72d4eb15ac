"""Load the raw data for the declared head: bundled sample, local files, or the hub.

Whatever the source, the result has the same canonical columns per head, so preprocessing
never sees the user's column names:

    seqcls    text, [text_pair], label        tokencls  tokens, tags
    qa        id, question, context, answers  seq2seq   source, target
    causal_lm text

Labels are checked here, before any model exists: every problem names the file and row.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
from omegaconf import DictConfig

from runner.errors import DataError
from runner.models import Labels

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"

# head -> (sample folder, train file, validation file)
SAMPLES = {
    "seqcls": ("sentiment", "train.jsonl", "validation.jsonl"),
    "tokencls": ("ner", "train.jsonl", "validation.jsonl"),
    "qa": ("qa", "train.json", "validation.json"),
    "seq2seq": ("translation", "train.jsonl", "validation.jsonl"),
    "causal_lm": ("text", "train.txt", "validation.txt"),
}

# role -> column names tried, in order, when data.columns.<role> is not set
COLUMN_CANDIDATES = {
    "text": ("text", "sentence", "sentence1", "content", "review", "document"),
    "text_pair": ("text_pair", "sentence2"),
    "label": ("label", "labels", "class"),
    "question": ("question",),
    "context": ("context",),
    "answers": ("answers",),
    "source": ("source", "src", "input", "document"),
    "target": ("target", "tgt", "output", "summary"),
    "tokens": ("tokens", "words"),
    "tags": ("ner_tags", "tags", "labels", "label"),
}

# head -> (required roles, optional roles); the order is also the column order assumed for
# header-less files without data.column_names.
ROLES = {
    "seqcls": (("text", "label"), ("text_pair",)),
    "tokencls": (("tokens", "tags"), ()),
    "qa": (("question", "context", "answers"), ()),
    "seq2seq": (("source", "target"), ()),
    "causal_lm": (("text",), ()),
}


@dataclass
class RawData:
    train: datasets.Dataset
    validation: datasets.Dataset
    test: datasets.Dataset | None
    labels: Labels | None  # seqcls / tokencls
    files: dict[str, str]  # split -> absolute path (or hub id), for the record


# -------------------------------------------------------------------------------- reading


def _format_of(path: Path, configured: str | None) -> str:
    if configured:
        return configured
    suffix = path.suffix.lower().lstrip(".")
    formats = {"csv": "csv", "tsv": "tsv", "json": "json", "jsonl": "jsonl", "parquet": "parquet",
               "txt": "txt", "text": "txt"}
    if suffix not in formats:
        raise DataError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}. Set "
            "data.format=csv|tsv|json|jsonl|parquet."
        )
    return formats[suffix]


def _read_json_lines(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}, line {number}: not valid JSON ({err.msg} at column {err.colno}). "
                    "Each line of a .jsonl file must be one JSON object; fix or remove that line."
                ) from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object, got "
                                f"{type(row).__name__}")
            rows.append(row)
    return rows


def _flatten_squad(document: dict, path: Path) -> list[dict]:
    """SQuAD-style {"data": [{"paragraphs": [{"context", "qas": [...]}]}]}: a row per question."""
    rows = []
    for article in document["data"]:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                answers = qa.get("answers", [])
                rows.append({
                    "id": str(qa.get("id", len(rows))),
                    "title": article.get("title", ""),
                    "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": {"text": [a["text"] for a in answers],
                                "answer_start": [int(a["answer_start"]) for a in answers]},
                })
    if not rows:
        raise DataError(f"{path}: a SQuAD-style file with no questions")
    return rows


def _read_json(path: Path) -> list[dict]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several JSON values: it is JSON lines
            return _read_json_lines(path)
        raise DataError(f"{path}, line {err.lineno}: not valid JSON ({err.msg} at column "
                        f"{err.colno})") from None
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        records = document["data"]
        if records and isinstance(records[0], dict) and "paragraphs" in records[0]:
            return _flatten_squad(document, path)
        document = records
    if isinstance(document, list) and all(isinstance(r, dict) for r in document):
        return document
    raise DataError(f"{path}: expected a list of JSON objects, a {{\"data\": [...]}} document "
                    "or SQuAD format")


def _read_text(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [{"text": line} for line in lines if line.strip()]


def read_file(path_str: str, data_cfg: DictConfig) -> list[dict] | pd.DataFrame:
    path = Path(path_str).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"data file {path} does not exist. Check data.train_file / "
                        "data.validation_file (relative paths are from where you ran).")
    fmt = _format_of(path, data_cfg.format)
    try:
        if fmt in ("csv", "tsv"):
            header = 0 if data_cfg.header else None
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", header=header,
                                keep_default_na=False, dtype_backend="numpy_nullable")
            if not data_cfg.header:
                frame.columns = [str(c) for c in frame.columns]
            return frame
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "jsonl":
            return _read_json_lines(path)
        if fmt == "json":
            return _read_json(path)
        return _read_text(path)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: cannot read it as {fmt}: {err}") from None


def _to_rows(table: list[dict] | pd.DataFrame) -> list[dict]:
    if isinstance(table, pd.DataFrame):
        return table.to_dict(orient="records")
    return table


# ------------------------------------------------------------------------- column mapping


def _translation_columns(rows: list[dict], data_cfg: DictConfig, where: str) -> list[dict]:
    """{"translation": {"en": ..., "de": ...}} -> source / target by language."""
    langs = list(rows[0]["translation"])
    source = data_cfg.source_lang or langs[0]
    target = data_cfg.target_lang or (langs[1] if len(langs) > 1 else None)
    for lang, key in ((source, "data.source_lang"), (target, "data.target_lang")):
        if lang not in langs:
            raise DataError(f"{where}: the translation pairs have languages {langs}, not "
                            f"{lang!r}. Set {key} to one of them.")
    return [{"source": r["translation"][source], "target": r["translation"][target]}
            for r in rows]


def _header_less_names(rows: list[dict], task: str, data_cfg: DictConfig, where: str) -> list[dict]:
    """Name positional columns: data.column_names, else the head's usual order."""
    width = len(rows[0])
    names = list(data_cfg.column_names or [])
    if not names:
        required, optional = ROLES[task]
        for candidate in (list(required), [required[0], *optional, *required[1:]]):
            if len(candidate) == width:
                names = candidate
                break
    if len(names) != width:
        raise DataError(
            f"{where} has no header and {width} columns. Name them with "
            f"data.column_names=[{','.join(['name'] * width)}] (e.g. text,label)."
        )
    return [dict(zip(names, r.values(), strict=True)) for r in rows]


def map_columns(rows: list[dict], task: str, data_cfg: DictConfig, where: str) -> list[dict]:
    """Rename the user's columns to the head's canonical roles."""
    if not rows:
        raise DataError(f"{where} has no rows. Give a file with data in it.")
    if task == "seq2seq" and "translation" in rows[0] and not data_cfg.columns.source:
        return _translation_columns(rows, data_cfg, where)
    required, optional = ROLES[task]
    found = list(rows[0])
    mapping = {}
    for role in (*required, *optional):
        configured = data_cfg.columns[role]
        if configured is not None:
            if configured not in found:
                raise DataError(
                    f"{where}: data.columns.{role}={configured!r} is not a column. "
                    f"Columns found: {', '.join(map(str, found))}."
                )
            mapping[role] = configured
            continue
        # a column already claimed by another role (e.g. "label") is not reused
        column = next((c for c in COLUMN_CANDIDATES[role]
                       if c in found and c not in mapping.values()), None)
        if column is not None:
            mapping[role] = column
        elif role in required:
            raise DataError(
                f"{where}: no {role} column for head={task}. Columns found: "
                f"{', '.join(map(str, found))}. Map one with data.columns.{role}=<column>."
            )
    out = []
    for i, row in enumerate(rows):
        mapped = {role: row[column] for role, column in mapping.items()}
        if task == "qa":  # post-processing matches predictions to questions by id
            mapped["id"] = str(row.get("id", i))
        out.append(mapped)
    return out


# --------------------------------------------------------------------------------- labels


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _class_labels(splits: dict[str, list[dict]], head: DictConfig, where: dict[str, str]
                  ) -> Labels:
    """Map seqcls labels to ids and check them, naming the split and row of any bad one."""
    values = [r["label"] for rows in splits.values() for r in rows]
    for split, rows in splits.items():
        for i, r in enumerate(rows, 1):
            if _is_missing(r["label"]) or r["label"] == "":
                raise DataError(f"{where[split]}, row {i}: the label is empty. Every row needs "
                                "a label.")
    if head.regression:
        for split, rows in splits.items():
            for i, r in enumerate(rows, 1):
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
    if all(isinstance(v, str) for v in values) and not all(_is_int_text(v) for v in values):
        names = sorted(set(values))
        if head.num_labels is not None and len(names) > head.num_labels:
            raise DataError(
                f"the data has {len(names)} classes ({', '.join(names[:20])}) but "
                f"head.num_labels={head.num_labels}. Set head.num_labels={len(names)} or more."
            )
        train_names = {r["label"] for r in splits["train"]}
        for split, rows in splits.items():
            for i, r in enumerate(rows, 1):
                if split != "train" and r["label"] not in train_names:
                    raise DataError(f"{where[split]}, row {i}: label {r['label']!r} never occurs "
                                    "in the training data, so the model cannot learn it")
                r["label"] = names.index(r["label"])
        if head.label_names:
            log.warning("head.label_names is ignored: string labels name themselves (%s)",
                        ", ".join(names))
        names += [f"LABEL_{i}" for i in range(len(names), head.num_labels or len(names))]
        return Labels(names)
    # integer labels
    for split, rows in splits.items():
        for i, r in enumerate(rows, 1):
            r["label"] = _as_class_id(r["label"], where[split], i)
    top = max(r["label"] for rows in splits.values() for r in rows)
    n = head.num_labels if head.num_labels is not None else top + 1
    for split, rows in splits.items():
        for i, r in enumerate(rows, 1):
            if not 0 <= r["label"] < n:
                raise DataError(
                    f"{where[split]}, row {i}: label {r['label']} is outside 0..{n - 1} "
                    f"(head.num_labels={n}). Set head.num_labels={top + 1} or fix the row."
                )
    names = list(head.label_names or [f"LABEL_{i}" for i in range(n)])
    return Labels(names)


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
    raise DataError(
        f"{where}, row {row}: label {value!r} is not a class id. Classification needs integer "
        "or string labels; for a numeric target set head.regression=true."
    )


def _tag_labels(splits: dict[str, list[dict]], head: DictConfig, where: dict[str, str]
                ) -> Labels:
    """Map token tags to ids: string tags sorted (O first), integer tags need names."""
    for split, rows in splits.items():
        for i, r in enumerate(rows, 1):
            if len(r["tokens"]) != len(r["tags"]):
                raise DataError(f"{where[split]}, row {i}: {len(r['tokens'])} tokens but "
                                f"{len(r['tags'])} tags")
            if not r["tokens"]:
                raise DataError(f"{where[split]}, row {i}: no tokens")
    tags = {t for rows in splits.values() for r in rows for t in r["tags"]}
    if all(isinstance(t, str) for t in tags):
        names = sorted(tags, key=lambda t: (t != "O", t[2:], t))
        if head.num_labels is not None and len(names) > head.num_labels:
            raise DataError(f"the data has {len(names)} tags but head.num_labels="
                            f"{head.num_labels}. Set head.num_labels={len(names)} or more.")
        ids = {name: i for i, name in enumerate(names)}
        for rows in splits.values():
            for r in rows:
                r["tags"] = [ids[t] for t in r["tags"]]
        return Labels(names)
    if not head.label_names:
        raise DataError(
            "the tags are integers, so their names are unknown. Give them with "
            "head.label_names=[O,B-PER,I-PER,...] (index = tag id) so entities can be scored."
        )
    n = len(head.label_names)
    for split, rows in splits.items():
        for i, r in enumerate(rows, 1):
            bad = [t for t in r["tags"] if not isinstance(t, int) or not 0 <= t < n]
            if bad:
                raise DataError(f"{where[split]}, row {i}: tag {bad[0]!r} is outside 0..{n - 1} "
                                f"({n} head.label_names)")
    return Labels(list(head.label_names))


# -------------------------------------------------------------------------------- sources


def _split_sources(cfg: DictConfig) -> dict[str, str]:
    data, task = cfg.data, cfg.head.task
    if data.source == "sample":
        folder, train, validation = SAMPLES[task]
        return {"train": str(SAMPLE_DIR / folder / train),
                "validation": str(SAMPLE_DIR / folder / validation)}
    files = {"train": data.train_file, "validation": data.validation_file,
             "test": data.test_file}
    return {k: str(Path(v).expanduser().resolve()) for k, v in files.items() if v}


def _load_hub(cfg: DictConfig) -> dict[str, list[dict]]:
    name, config = cfg.data.hub_name, cfg.data.hub_config
    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as err:  # datasets raises many types for "not reachable / not found"
        raise DataError(
            f"cannot load data.hub_name={name!r}"
            f"{f' (data.hub_config={config!r})' if config else ''} from the Hugging Face Hub: "
            f"{type(err).__name__}: {str(err)[:300]}. Offline, download the files where there "
            "is network and use data=local data.train_file=... instead."
        ) from None
    splits = {"train": loaded["train"].to_list()}
    for split in ("validation", "test"):
        if split in loaded:
            splits[split] = loaded[split].to_list()
    return splits


def _hold_out(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    import random

    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(len(rows) * fraction))
    val_idx = set(order[:n_val])
    return ([r for i, r in enumerate(rows) if i not in val_idx],
            [r for i, r in enumerate(rows) if i in val_idx])


def load_data(cfg: DictConfig) -> RawData:
    """Read, map and check every split; nothing here needs a model."""
    data, task = cfg.data, cfg.head.task
    if data.source == "hub":
        raw = _load_hub(cfg)
        where = {split: f"hub dataset {data.hub_name}[{split}]" for split in raw}
    else:
        sources = _split_sources(cfg)
        raw = {}
        for split, path in sources.items():
            rows = _to_rows(read_file(path, data))
            if not data.header and data.source == "local":
                rows = _header_less_names(rows, task, data, path) if rows else rows
            raw[split] = rows
        where = dict(sources)
    splits = {split: map_columns(rows, task, data, where[split]) for split, rows in raw.items()}
    if "validation" not in splits:
        splits["train"], splits["validation"] = _hold_out(
            splits["train"], data.validation_fraction, cfg.trainer.seed)
        where["validation"] = f"{where['train']} (held-out {data.validation_fraction:.0%})"
        log.info("no validation file: holding out %d training rows for validation",
                 len(splits["validation"]))
    for split, rows in splits.items():
        if not rows:
            raise DataError(f"{where[split]}: the {split} split is empty")
    labels = None
    if task == "seqcls":
        labels = _class_labels(splits, cfg.head, where)
    elif task == "tokencls":
        labels = _tag_labels(splits, cfg.head, where)
    if data.max_train_samples:
        splits["train"] = splits["train"][: data.max_train_samples]
    if data.max_eval_samples:
        splits["validation"] = splits["validation"][: data.max_eval_samples]
    for split, rows in splits.items():
        log.info("%s: %d rows from %s", split, len(rows), where[split])
    to_dataset = datasets.Dataset.from_list
    return RawData(
        train=to_dataset(splits["train"]),
        validation=to_dataset(splits["validation"]),
        test=to_dataset(splits["test"]) if "test" in splits else None,
        labels=labels,
        files={k: str(v) for k, v in where.items()},
    )

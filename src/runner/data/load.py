"""Load the raw data for the declared head: bundled sample, local files, or the hub.

Whatever the source, the result has the head's canonical columns (its roles in
runner.config.tasks), so preprocessing never sees the user's column names.
Columns are mapped by runner.data.columns and labels checked by runner.data.labels,
before any model exists: every problem names the file and row.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pandas as pd
from omegaconf import DictConfig

from runner.config.tasks import TASKS
from runner.data.checks import check_rows
from runner.data.columns import header_less_names, map_columns
from runner.data.conll import read_conll
from runner.data.labels import Labels, class_labels, tag_labels
from runner.errors import DataError

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
LABELS = {"classes": class_labels, "tags": tag_labels}  # TaskSpec.labels -> the mapping


@dataclass
class RawData:
    train: datasets.Dataset
    validation: datasets.Dataset
    test: datasets.Dataset | None
    labels: Labels | None  # what the data decided, for heads with TaskSpec.labels
    # split -> the file it was read from, or the hub dataset's name (for MLflow's Datasets)
    sources: dict[str, str] = field(default_factory=dict)
    held_out: bool = False  # validation rows were held out of the training split


# -------------------------------------------------------------------------------- reading


def _format_of(path: Path, configured: str | None) -> str:
    if configured:
        return configured
    suffix = path.suffix.lower().lstrip(".")
    formats = {"csv": "csv", "tsv": "tsv", "json": "json", "jsonl": "jsonl", "parquet": "parquet",
               "txt": "txt", "text": "txt", "conll": "conll", "iob": "conll", "iob2": "conll"}
    if suffix not in formats:
        raise DataError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}. Set "
            "data.format=csv|tsv|json|jsonl|parquet|conll."
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


def _refuse_json_as_table(path: Path, fmt: str) -> None:
    """A JSON file named .csv/.tsv would be read as one header line and no rows."""
    with path.open(encoding="utf-8", errors="replace") as f:
        start = f.read(256).lstrip()
    if start[:1] in ("{", "["):
        raise DataError(f"{path} looks like JSON (it starts with {start[:1]!r}), not {fmt}. "
                        "Rename it to .json / .jsonl, or set data.format=json (or jsonl).")


def _read_text(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [{"text": line} for line in lines if line.strip()]


def read_file(path_str: str, data_cfg: DictConfig) -> list[dict] | pd.DataFrame:
    path = Path(path_str).expanduser().resolve()
    if path.is_dir():
        raise DataError(f"data file {path} is a directory, not a file. Point data.train_file "
                        "/ data.validation_file at a file inside it.")
    if not path.is_file():
        raise DataError(f"data file {path} does not exist. Check data.train_file / "
                        "data.validation_file (relative paths are from where you ran).")
    fmt = _format_of(path, data_cfg.format)
    try:
        if fmt in ("csv", "tsv"):
            _refuse_json_as_table(path, fmt)
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
        if fmt == "conll":
            return read_conll(path, data_cfg.column_names)
        return _read_text(path)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: cannot read it as {fmt}: {err}") from None


def _to_rows(table: list[dict] | pd.DataFrame) -> list[dict]:
    if isinstance(table, pd.DataFrame):
        return table.to_dict(orient="records")
    return table


# -------------------------------------------------------------------------------- sources


def _split_sources(cfg: DictConfig) -> dict[str, str]:
    data, task = cfg.data, cfg.head.task
    if data.source == "sample":
        folder, train, validation = TASKS[task].sample
        sample = {"train": str(SAMPLE_DIR / folder / train),
                  "validation": str(SAMPLE_DIR / folder / validation)}
        if data.test_file:  # a test split of the user's own beside the bundled data
            sample["test"] = str(Path(data.test_file).expanduser().resolve())
        return sample
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
        sources = {split: data.hub_name for split in raw}
    else:
        sources = _split_sources(cfg)
        raw = {}
        for split, path in sources.items():
            rows = _to_rows(read_file(path, data))
            if not data.header and data.source == "local":
                rows = header_less_names(rows, task, data, path) if rows else rows
            raw[split] = rows
        where = dict(sources)
    splits = {split: map_columns(rows, task, data, where[split]) for split, rows in raw.items()}
    if "validation" not in splits:
        if len(splits["train"]) < 2:
            raise DataError(f"{where['train']} has {len(splits['train'])} row and no "
                            "validation file: nothing is left to train on once validation "
                            "rows are held out. Add rows, or give data.validation_file.")
        splits["train"], splits["validation"] = _hold_out(
            splits["train"], data.validation_fraction, cfg.trainer.seed)
        where["validation"] = f"{where['train']} (held-out {data.validation_fraction:.0%})"
        log.info("no validation file: holding out %d training rows for validation",
                 len(splits["validation"]))
    for split, rows in splits.items():
        if not rows:
            raise DataError(f"{where[split]}: the {split} split is empty")
    check_rows(splits, cfg.head, where)
    kind = TASKS[task].labels
    labels = LABELS[kind](splits, cfg.head, where) if kind else None
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
        sources=sources,
        held_out="validation" not in raw,
    )

"""On-disk cache of tokenized features, keyed by what they are made from.

The key covers the raw data's content, the tokenizer, the preprocessing settings and the
preprocessing code itself, so the jobs of a sweep and repeated runs tokenize once, and a
change to any of those tokenizes again. Entries are written to a staging folder and
renamed into place, so an interrupted write is never read.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
from omegaconf import DictConfig, OmegaConf

from runner import console

log = logging.getLogger(__name__)

# Settings that change what any head's preprocessing produces; each task adds its own.
PREPROCESSING_KEYS = ("data.max_length", "head.task")


def cache_root() -> Path:
    return Path(os.environ.get("RUNNER_CACHE_DIR", Path.home() / ".cache" / "runner"))


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts = [type(tokenizer).__name__, tokenizer.padding_side, tokenizer.truncation_side,
             list(tokenizer.model_input_names), sorted(tokenizer.special_tokens_map.items()),
             backend.to_str() if backend is not None else tokenizer.get_vocab()]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def features_key(cfg: DictConfig, raw, tokenizer, code: list[Any],
                 settings: tuple[str, ...] = ()) -> str:
    # The raw splits' fingerprints cover their content with labels already mapped to ids
    # (label names and head.num_labels do not change the features, so a sweep over them
    # shares one entry).
    values = {k: OmegaConf.select(cfg, k) for k in (*PREPROCESSING_KEYS, *settings)}
    parts = [raw.train._fingerprint, raw.validation._fingerprint, tokenizer_fingerprint(tokenizer),
             values, datasets.__version__,
             [hashlib.sha256(inspect.getsource(c).encode()).hexdigest() for c in code]]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def load_or_build(key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """{name: Dataset | JSON-able value} from the cache, or built, stored and returned."""
    target = cache_root() / "features" / key
    if (target / "index.json").is_file():
        log.info("tokenized features: reusing %s", target)
        return _load(target)
    built = build()
    staging = target.with_name(f".{key}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _save(staging, built)
        staging.rename(target)
    except OSError as err:  # another job got there first, or the disk is full: use ours
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "index.json").is_file():
            log.warning("could not cache tokenized features (%s); continuing without", err)
    return built


def _save(folder: Path, parts: dict[str, Any]) -> None:
    folder.mkdir(parents=True)
    index = {}
    for name, value in parts.items():
        if isinstance(value, datasets.Dataset):
            with console.library_bars_off():
                value.save_to_disk(str(folder / name))
            index[name] = "dataset"
        else:
            (folder / f"{name}.json").write_text(json.dumps(value))
            index[name] = "json"
    (folder / "index.json").write_text(json.dumps(index))  # last: marks the entry complete


def _load(folder: Path) -> dict[str, Any]:
    index = json.loads((folder / "index.json").read_text())
    with console.library_bars_off():
        return {name: datasets.load_from_disk(str(folder / name)) if kind == "dataset"
                else json.loads((folder / f"{name}.json").read_text())
                for name, kind in index.items()}

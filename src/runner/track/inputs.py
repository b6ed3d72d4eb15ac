"""The run's data in MLflow's Datasets panel: one dataset input per split (training,
validation, test), each with where it came from, its row count, its column schema and a
digest taken from the `datasets` content fingerprint (the same rows give the same digest)."""

from __future__ import annotations

import warnings
from pathlib import Path

CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}
CONTEXT_TAG = "mlflow.data.context"  # MLflow's own input tag, shown beside the dataset


def dataset_name(split: str, source: str, hub: bool) -> str:
    """What the Datasets panel lists: the hub split, or the file with its folder."""
    if hub:
        return f"{source}[{split}]"
    path = Path(source)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _source(raw, split: str, data_cfg):
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    if data_cfg.source == "hub":
        return HuggingFaceDatasetSource(path=raw.sources[split], config_name=data_cfg.hub_config,
                                        split=split)
    return resolve_dataset_source(raw.sources[split])  # a local file


def dataset_inputs(raw, data_cfg) -> list:
    """DatasetInput entities for every split of `raw` (runner.data.load.RawData)."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    found = []
    for split, context in CONTEXTS.items():
        rows = getattr(raw, split)
        read_from = "train" if split == "validation" and raw.held_out else split
        if rows is None or read_from not in raw.sources:
            continue
        name = dataset_name(split, raw.sources[read_from], data_cfg.source == "hub")
        if read_from != split:
            name += " (held out)"
        # MLflow's hints ("can be interpreted in multiple ways" for a file, "integer
        # columns cannot hold missing values") are not about this run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_huggingface(
                rows, source=_source(raw, read_from, data_cfg), name=name,
                digest=rows._fingerprint)
            entity = dataset._to_mlflow_entity()
        found.append(DatasetInput(entity, tags=[InputTag(CONTEXT_TAG, context)]))
    return found

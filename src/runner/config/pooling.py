"""head.pooling: how a sequence classifier turns the token states into one vector.

Pure (json files only, no torch), so validation and defaults can use it. `auto` means the
checkpoint's own pooling: a sentence-transformers checkpoint names it in its pooling
module's config (e.g. all-MiniLM-L6-v2 was trained mean-pooled), a model runner saved
records it in config.json; otherwise the family's native choice is used (the HeadSpec's
`pooling`: BERT's pooler, RoBERTa / DistilBERT the first token, GPT-2 the last real token).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

POOLINGS = ("auto", "pooler", "cls", "mean", "max", "last")
# What runner's own pooled classes (runner.model.pooled) compute over the attention mask;
# a family's native pooling keeps its transformers class instead.
RUNNER_POOLINGS = ("cls", "mean", "max", "last")
DESCRIPTIONS = {
    "pooler": "BERT's pooler (dense + tanh over the first token)",
    "cls": "the first token's state",
    "mean": "the mean of the token states over the attention mask",
    "max": "the per-feature maximum of the token states over the attention mask",
    "last": "the last real token's state",
}
# sentence-transformers' Pooling config keys -> runner's names
_SENTENCE_TRANSFORMERS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "last",
}
POOLED_MODEL_TYPE = "runner_pooled_{family}"  # config model_type of runner's pooled classes


def _read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _from_pooling_config(config: dict, where: str) -> str | None:
    modes = [name for key, name in _SENTENCE_TRANSFORMERS.items() if config.get(key)]
    others = [k for k, v in config.items() if k.startswith("pooling_mode") and v
              and k not in _SENTENCE_TRANSFORMERS]
    if len(modes) == 1 and not others:
        return modes[0]
    # Concatenated modes or mean_sqrt_len: no single runner pooling reproduces them.
    log.warning("%s asks for pooling %s, which runner does not offer; using the family's "
                "own pooling (set head.pooling to choose)", where, modes + others)
    return None


def _sentence_transformers_dir(folder: Path) -> tuple[str, str] | None:
    """(pooling, its config file) of a sentence-transformers model whose transformer files
    are in `folder`: modules.json sits in the folder itself or, in older layouts
    (0_Transformer/), above it."""
    for root in (folder, folder.parent):
        modules = _read_json(root / "modules.json")
        if not isinstance(modules, list):
            continue
        paths = [m.get("path", "") for m in modules
                 if isinstance(m, dict) and str(m.get("type", "")).endswith(".Pooling")]
        for rel in paths:
            config_file = root / rel / "config.json"
            config = _read_json(config_file)
            mode = _from_pooling_config(config, str(config_file)) if isinstance(
                config, dict) else None
            if mode:
                return mode, str(config_file)
    return None


def _sentence_transformers_hub(repo_id: str) -> tuple[str, str] | None:
    """The same for a hub id, from the local Hugging Face cache only (never the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        modules_file = try_to_load_from_cache(repo_id, "modules.json")
    except ValueError:  # not a valid hub id (e.g. a missing local path): vetted later
        return None
    if not isinstance(modules_file, str):
        return None
    # the snapshot folder: the pooling config sits there too once it was downloaded
    return _sentence_transformers_dir(Path(modules_file).parent)


def checkpoint_pooling(checkpoint: str, family: str) -> tuple[str, str] | None:
    """(pooling, where it was read) for a checkpoint that declares its own, else None."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        config = _read_json(path / "config.json")
        if (isinstance(config, dict) and config.get("pooling") in RUNNER_POOLINGS
                and config.get("model_type") == POOLED_MODEL_TYPE.format(family=family)):
            return config["pooling"], f"{path / 'config.json'} (saved by runner)"
        return _sentence_transformers_dir(path)
    return _sentence_transformers_hub(checkpoint)


def resolve(pooling: str, native: str, checkpoint: str, family: str, init: str
            ) -> tuple[str, str]:
    """(concrete pooling, why) for head.pooling. A scratch model has no trained pooling of
    its own, so `auto` gives the family's native one there."""
    if pooling != "auto":
        return pooling, f"head.pooling={pooling}"
    found = checkpoint_pooling(checkpoint, family) if init == "pretrained" else None
    if found is not None:
        return found[0], f"auto: the checkpoint's own pooling, from {found[1]}"
    return native, f"auto: {family}'s native pooling"

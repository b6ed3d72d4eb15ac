"""Validation of what the config names on disk: a local checkpoint's config.json and the
output directory. Part of validate(): each problem with the key and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from runner.config.families import ARCHITECTURE_KEYS, FAMILIES
from runner.errors import Problem


def check_checkpoint_config(cfg: DictConfig, problems: list[Problem]) -> None:
    """A local checkpoint's config.json: a JSON object whose sizes are positive integers
    (the family's size keys), else the model would fail to build with a traceback."""
    family = FAMILIES.get(cfg.model.family)
    config_file = Path(str(cfg.model.checkpoint)) / "config.json"
    if family is None or not config_file.is_file():
        return
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return  # unreadable: the checkpoint check says so, with the error
    key = "model.checkpoint"
    if not isinstance(config, dict):
        problems.append(Problem(key, f"{config_file} holds a JSON {type(config).__name__}, not "
                                "an object of config values", "point model.checkpoint at a "
                                "directory written by save_pretrained"))
        return
    sizes = [k for k, v in family.default_config.items()
             if k in ARCHITECTURE_KEYS and isinstance(v, int)]
    for size in sizes:
        value = config.get(size)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):
            problems.append(Problem(key, f"{config_file}: {size}={value!r} is not a positive "
                                    "integer", f"fix {size} in that file (e.g. "
                                    f"{family.default_config[size]})"))


def check_output_dir(cfg: DictConfig, problems: list[Problem]) -> None:
    """trainer.output_dir must be creatable: no file where one of its folders would be, and
    its nearest existing folder writable (not a read-only disk, not /proc)."""
    if not cfg.trainer.output_dir:
        return
    path = Path(str(cfg.trainer.output_dir)).expanduser().absolute()
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        problems.append(Problem("trainer.output_dir", f"{str(path)!r} cannot be a directory: "
                                f"{blocker} is a file", "choose another trainer.output_dir "
                                "(or move that file)"))
        return
    existing = next(p for p in (path, *path.parents) if p.is_dir())
    why = unwritable(existing)
    if why:
        problems.append(Problem("trainer.output_dir", f"{str(path)!r} cannot be written: "
                                f"creating a folder in {existing} fails ({why})",
                                "choose a trainer.output_dir on a writable disk"))


def unwritable(folder: Path) -> str | None:
    """Why nothing can be created in `folder` (a read-only disk, no permission, a virtual
    filesystem), or None. Asked of the filesystem itself, by creating and removing a folder:
    permission bits alone do not tell (root, read-only mounts, /proc)."""
    import tempfile

    try:
        Path(tempfile.mkdtemp(prefix=".runner-write-check-", dir=folder)).rmdir()
    except OSError as err:
        return err.strerror or str(err)
    return None

"""Files that are never seen half-written, locks between processes, and the file a
sqlite URL names.

Every write that another process (or the next run) may read goes through `atomic_write`:
the content is staged beside the target and renamed into place (atomic on one filesystem).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data) if isinstance(data, bytes) else tmp.write_text(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(payload, indent=2, default=str))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# What atomic_write (.{name}.{pid}.tmp) and the final model's staging (.model-{pid}.tmp)
# leave when their process is killed: the writer's process id is in the name.
STAGED = re.compile(r"^\..+[.-](\d+)\.tmp$")


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove what killed writers staged in `folder` (files or folders named by a process
    id no longer running); a live process's own staging is left alone. Returns what went."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir()
             if (m := STAGED.match(p.name)) and int(m[1]) != os.getpid()
             and not pid_alive(int(m[1]))]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def unreadable_safetensors(path: Path) -> str | None:
    """Why a .safetensors file cannot be loaded (truncated, not safetensors at all), or None.
    Opening reads the header and checks the tensors cover the file exactly: cheap, no
    tensor data is read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as err:  # noqa: BLE001  (safetensors raises its own error types)
        return " ".join(str(err).split())[:200] or type(err).__name__
    return None


SQLITE = "sqlite:///"


def sqlite_file(url: str) -> Path | None:
    """The database file a sqlite URL names (relative: sqlite:///x.db, absolute:
    sqlite:////abs/x.db), else None (another URL, or an in-memory database). One parser
    for the MLflow store and the Optuna storage."""
    if not url.startswith(SQLITE):
        return None
    path = url[len(SQLITE):]
    return None if path in ("", ":memory:") else Path(path)

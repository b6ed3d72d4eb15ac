"""Files that are never seen half-written, locks between processes, and the file a
sqlite URL names.

Every write that another process (or the next run) may read goes through `atomic_write`:
the content is staged beside the target and renamed into place (atomic on one filesystem).
"""

from __future__ import annotations

import json
import os
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

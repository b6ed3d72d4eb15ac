"""Where a run comes from: the command, the commit, the process holding it open."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from runner.track import tags


def program() -> str:
    """How the command starts (argv[0] of `python -m runner` is __main__.py)."""
    path = Path(sys.argv[0])
    return f"python -m {path.parent.name}" if path.name == "__main__.py" else path.name


def command_line() -> str:
    """The command as one would type it again."""
    return " ".join([program(), *map(shlex.quote, sys.argv[1:])])


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def process_tags() -> dict[str, str]:
    """Who holds a run open: how the next start tells a live run from an orphan
    (runner.track.store.mark_orphaned_runs)."""
    return {tags.HOST: socket.gethostname(), tags.PID: str(os.getpid())}

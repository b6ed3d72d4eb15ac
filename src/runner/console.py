"""What the console shows: runner's own progress bars and log lines, not every library's.

The entry points call `setup()` first thing. It quiets the libraries runner drives
(datasets' and the hub's progress bars and logs, transformers' notices, accelerate's file
narration, MLflow's "View run ... at" lines and alembic's migration lines), mostly through
their own environment variables, so processes started later (sweep workers, `accelerate
launch` ranks) inherit the same console. A variable the user set is left as it is.
Library warnings of consequence still reach the console at ERROR level; everything else
is one `-v` away: `python -m runner -v ...` shows runner's DEBUG lines and lets the
libraries speak as they normally do.

This is a base module: it imports no runner stage and no heavy library.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

VERBOSE_FLAGS = ("-v", "--verbose")
# The level of runner's own loggers; read by hydra.job_logging in conf/config.yaml, so a
# Hydra job (and every sweep worker) logs at it too.
LEVEL_VARIABLE = "RUNNER_LOG_LEVEL"

# Each library's own switch, set unless the user chose otherwise.
QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",  # "Loading weights", advisory warnings
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # "🏃 View run ... at", "🧪 View ..."
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # mlflow.* and (through it) alembic's INFO lines
}
# Loggers that propagate to the root handler Hydra installs: shown from WARNING only.
QUIET_LOGGERS = ("accelerate", "alembic", "filelock", "fsspec", "httpx", "huggingface_hub",
                 "sqlalchemy", "torch", "urllib3", "matplotlib", "PIL", "numexpr")


def strip_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """argv without -v/--verbose, and whether one was there."""
    kept = [a for a in argv if a not in VERBOSE_FLAGS]
    return kept, len(kept) != len(argv)


def setup(verbose: bool = False) -> None:
    """Set up the console for a runner command; call before the libraries are imported."""
    if verbose:
        os.environ[LEVEL_VARIABLE] = "DEBUG"
        logging.getLogger("runner").setLevel(logging.DEBUG)
        return
    os.environ.setdefault(LEVEL_VARIABLE, "INFO")
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    _quiet_imported_libraries()


def _quiet_imported_libraries() -> None:
    """The environment variables act at import; a library already imported (by a test, or
    a plugin) is told directly."""
    if "datasets" in sys.modules and os.environ["DATASETS_VERBOSITY"] == "error":
        import datasets

        datasets.logging.set_verbosity_error()
    if "transformers" in sys.modules and os.environ["TRANSFORMERS_VERBOSITY"] == "error":
        import transformers

        transformers.logging.set_verbosity_error()
    if "mlflow" in sys.modules:
        level = os.environ["MLFLOW_LOGGING_LEVEL"]
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(level)


def drop_log_lines_a_full_disk_refuses() -> None:
    """Hydra's job log file (<run dir>/<job>.log) on a full or read-only disk: its lines are
    dropped, where logging would print a traceback for each one; the run reports the disk
    error itself. Called once Hydra has set up the job's logging."""
    from runner.errors import DISK_ERRNOS

    def handle_error(handler: logging.Handler, record: logging.LogRecord) -> None:
        err = sys.exc_info()[1]
        if not (isinstance(err, OSError) and err.errno in DISK_ERRNOS):
            logging.Handler.handleError(handler, record)

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handleError = functools.partial(handle_error, handler)


@contextmanager
def library_bars_off() -> Iterator[None]:
    """No datasets progress bars inside this block (its "Saving the dataset" / "Loading
    dataset from disk" bars narrate runner's cache, not work a person waits for). Its map
    bars stay on elsewhere: runner's tokenizing runs through them, labelled "tokenizing"."""
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()

"""The MLflow store: where it is, opening it safely, experiments, runs left behind.

Runs, sweeps and `runner.compare` all find the store through `resolve_uri`, so a compare
started where a run was started reads what that run wrote. mlflow is imported inside the
functions (`runner.compare --help` imports this module).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.files import SQLITE, pid_alive, sqlite_file
from runner.track import tags

log = logging.getLogger(__name__)

DEFAULT_STORE = "mlflow.db"
ORPHAN_CHECK_LIMIT = 500  # RUNNING runs looked at per start


# ------------------------------------------------------------------------ the address


def resolve_uri(given: str | None = None) -> str:
    """`given` (logger.tracking_uri, --tracking-uri), else $MLFLOW_TRACKING_URI, else
    mlflow.db in the directory you ran from. A path to an existing mlflow.db means it."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"{SQLITE}{(launch_dir() / DEFAULT_STORE).resolve()}"
    if "://" not in uri and Path(uri).is_file():
        return f"{SQLITE}{Path(uri).resolve()}"
    return uri


def tracking_uri(cfg) -> str:
    return resolve_uri(cfg.logger.get("tracking_uri"))


def launch_dir() -> Path:
    """Where the user ran the command: Hydra changes into the run directory of each job."""
    hydra = sys.modules.get("hydra.core.hydra_config")  # not imported: not a Hydra app
    if hydra is not None and hydra.HydraConfig.initialized():
        return Path(hydra.HydraConfig.get().runtime.cwd)
    return Path.cwd()


def local_store_path(uri: str) -> Path | None:
    """The file or folder a local store lives in; None for remote stores."""
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if "://" not in uri:
        return Path(uri)
    return sqlite_file(uri)


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a sqlite store's file, so the store
    is self-contained (MLflow's default is ./mlruns of whatever directory the first run
    started from); other stores (a server) decide for themselves."""
    db = sqlite_file(uri)
    return None if db is None else str(db.resolve().parent / "mlruns")


# -------------------------------------------------------------------------- opening


# A tracking server that does not answer fails the run in seconds, not after MLflow's
# default of 7 retries with a 120 s timeout each; the user's own settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def client_for(uri: str):
    """A client whose store exists and can be written, else a TrackingError naming the
    store and the fix. A fresh sqlite file is created under a file lock (MLflow's
    migrations fail when several processes run them on one new file) and under a temporary
    name, renamed into place once migrated: a signal mid-migration never leaves a
    half-created store behind."""
    from filelock import FileLock

    db = sqlite_file(uri)
    if db is None:
        if uri.startswith(("http://", "https://")):
            for key, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)
        return _opened(uri)
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise store_error(uri, err) from None
    # sqlite writes a journal beside the file, and the lock lives there too.
    if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        raise store_error(uri, PermissionError("attempt to write a readonly database"))
    with FileLock(db.with_name(db.name + ".lock")):
        if not db.is_file() or db.stat().st_size == 0:
            _create(db)
        else:
            _set_aside_if_half_created(db)
        return _opened(uri)


def _opened(uri: str):
    from mlflow.tracking import MlflowClient

    from runner.errors import RunnerError

    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (creating, migrating) the store
    except RunnerError:
        raise  # a signal meanwhile
    except Exception as err:  # noqa: BLE001  (MLflow, SQLAlchemy and requests each raise their own)
        raise store_error(uri, err) from None
    return client


def _create(db: Path) -> None:
    """Create and migrate a new store as a temporary file, then rename it into place."""
    for stale in db.parent.glob(f".{db.name}.*.creating"):  # we hold the lock: abandoned
        stale.unlink(missing_ok=True)
    staging = db.with_name(f".{db.name}.{os.getpid()}.creating")
    try:
        _opened(f"{SQLITE}{staging}")
        os.replace(staging, db)
    finally:
        staging.unlink(missing_ok=True)


def _set_aside_if_half_created(db: Path) -> None:
    """A store whose creation was cut short (no runs, schema short of MLflow's latest: a
    process killed mid-migration by an older runner or by plain MLflow) is moved aside and
    created anew, saying so. A store with runs is never touched."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master "
                                                "WHERE type = 'table'")}
            version = (con.execute("SELECT version_num FROM alembic_version").fetchone()
                       if "alembic_version" in tables else None)
            runs = (con.execute("SELECT count(*) FROM runs").fetchone()[0]
                    if "runs" in tables else 0)
        con.close()
    except sqlite3.DatabaseError:
        return  # not a database at all: opening it reports that, with the fix
    from mlflow.store.db.utils import _get_latest_schema_revision

    if runs or (version and version[0] == _get_latest_schema_revision()):
        return
    aside = db.with_name(f"{db.name}.half-created-{int(time.time())}")
    os.replace(db, aside)
    log.warning("the MLflow store %s was left half-created (its schema migration was "
                "interrupted; it holds no runs): moved it to %s and creating it anew", db, aside)
    _create(db)


def store_error(uri: str, err: BaseException):
    """The TrackingError for a store that cannot be used: which store, why, what to do."""
    from runner.errors import TrackingError

    text = " ".join(str(err).split())[:300] or type(err).__name__
    low = text.lower()
    db = sqlite_file(uri)
    if db is not None and ("not a database" in low or "malformed" in low):
        why, fix = ("is not a readable SQLite database (corrupt, or another kind of file)",
                    f"move it aside (mv {db} {db}.bad) so runner creates a fresh store, or "
                    "point logger.tracking_uri at another store")
    elif db is not None and ("readonly" in low or "read-only" in low
                             or isinstance(err, PermissionError)):
        why, fix = ("cannot be written (a read-only file, folder or filesystem)",
                    "make the file and its folder writable, or point logger.tracking_uri at "
                    "a writable store (logger.tracking_uri=sqlite:////tmp/mlflow.db)")
    elif "out-of-date database schema" in low:
        why, fix = ("was made by another MLflow version",
                    f"back it up, then run `mlflow db upgrade {uri}`")
    elif db is not None:
        why, fix = ("cannot be opened", f"check that {db.parent} is a folder you can write, "
                    "or point logger.tracking_uri at another store")
    elif uri.startswith(("http://", "https://")):
        why, fix = ("cannot be reached", "start the tracking server (mlflow server ...), "
                    "check logger.tracking_uri, or run without tracking: logger=none")
    else:
        why, fix = ("is not a tracking store MLflow can use",
                    "use sqlite:///path/to/mlflow.db, a folder path, or http(s)://host:port")
    return TrackingError(f"logger.tracking_uri: the MLflow store {uri} {why} ({text}).\n"
                         f"     fix: {fix}")


@contextmanager
def reading(uri: str) -> Iterator[None]:
    """Point MLflow's module-level API (mlflow.search_runs, ...) at `uri` for a while."""
    import mlflow

    # set_tracking_uri also sets $MLFLOW_TRACKING_URI (for subprocesses): put back the
    # variable as it was, which None removes.
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def experiment_id(client, name: str, uri: str) -> str:
    """The experiment's id, created if needed (safe when several jobs race to create it),
    tagged so the MLflow UI opens it in its model-training view."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            found = client.get_experiment(
                client.create_experiment(name, artifact_location=artifact_root(uri)))
        except MlflowException:
            found = client.get_experiment_by_name(name)
    if found.tags.get(tags.EXPERIMENT_KIND) != tags.MODEL_TRAINING:
        client.set_experiment_tag(found.experiment_id, tags.EXPERIMENT_KIND, tags.MODEL_TRAINING)
    return found.experiment_id


def run_exists(client, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        return False
    return True


# --------------------------------------------------------------------- runs left over


def _orphaned(run_tags: dict[str, str], host: str) -> bool:
    pid = run_tags.get(tags.PID, "")
    return run_tags.get(tags.HOST) == host and pid.isdigit() and not pid_alive(int(pid))


def mark_orphaned_runs(client, exp_id: str) -> list[str]:
    """Runs left RUNNING by a process of this host that is gone (SIGKILL, power loss)."""
    host = socket.gethostname()
    orphans = []
    runs = client.search_runs([exp_id], filter_string="attributes.status = 'RUNNING'",
                              max_results=ORPHAN_CHECK_LIMIT)
    for run in runs:
        if not _orphaned(run.data.tags, host):
            continue
        client.set_tag(run.info.run_id, tags.KILLED_REASON,
                       f"process {run.data.tags[tags.PID]} on {host} ended without closing "
                       "the run")
        client.set_terminated(run.info.run_id, status="KILLED")
        orphans.append(run.info.run_id)
    if orphans:
        log.warning("marked %d run(s) KILLED whose process is gone: %s", len(orphans),
                    ", ".join(orphans))
    return orphans

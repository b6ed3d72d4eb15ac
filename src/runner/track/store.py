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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.track import tags

log = logging.getLogger(__name__)

DEFAULT_STORE = "mlflow.db"
SQLITE = "sqlite:///"
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


def sqlite_file(uri: str) -> Path | None:
    if not uri.startswith(SQLITE):
        return None
    path = uri[len(SQLITE):]
    return None if path in ("", ":memory:") else Path(path)


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


def client_for(uri: str):
    """A client whose store exists. A fresh sqlite file is created and migrated under a file
    lock: MLflow's migrations fail when several processes run them on one new file."""
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    db = sqlite_file(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(db.with_name(db.name + ".lock")):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (creating, migrating) the store
    return client


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _orphaned(run_tags: dict[str, str], host: str) -> bool:
    pid = run_tags.get(tags.PID, "")
    return run_tags.get(tags.HOST) == host and pid.isdigit() and not _pid_alive(int(pid))


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

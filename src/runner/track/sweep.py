"""Sweeps (`python -m runner -m ...`): one MLflow parent run, every job a nested child.

The Hydra callback opens the parent before any job starts (which also creates and migrates
the tracking store once, so parallel jobs do not race to do it) and writes sweep.json in
the sweep directory; each job reads it to tag its run as a child with its swept values.
A failing job is recorded and the others go on; at the end the parent gets the job count,
the failures and the best child, and the sweep exits non-zero listing every failed job.
SIGINT / SIGTERM during a job stops the whole sweep: that job and the parent end KILLED.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from runner.config.defaults import objective
from runner.errors import Interrupted, Preempted, RunnerError
from runner.files import write_json
from runner.track import tags as names
from runner.track.origin import command_line, process_tags
from runner.track.store import client_for, experiment_id, tracking_uri
from runner.train.run_file import read_run_file

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"
JOBS_DIR = "jobs"


def _parse(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def swept_keys(config: DictConfig) -> list[str]:
    """Keys the sweep varies: sweep syntax on the command line, or a sweeper's search space."""
    keys = [o.key_or_group for o in _parse(list(config.hydra.overrides.task))
            if o.is_sweep_override()]
    params = config.hydra.sweeper.get("params") or {}
    keys += [k for k in params if k not in keys]
    return keys


def read_sweep_file(sweep_dir: Path | None) -> dict[str, Any]:
    if sweep_dir is None:
        return {}
    path = Path(sweep_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def sweep_tags(where) -> dict[str, str]:
    """Tags that make a job's run a child of its sweep's parent run."""
    info = read_sweep_file(where.sweep_dir)
    if not info:
        return {}
    tags = {names.SWEEP_DIR: str(where.sweep_dir)}
    if info.get("parent_run_id"):
        tags[names.PARENT_RUN_ID] = info["parent_run_id"]
    values = {o.key_or_group: o.value() for o in _parse(where.overrides)}
    for key in info.get("swept", []):
        if key in values:
            tags[names.swept(key)] = str(values[key])
    return tags


# --------------------------------------------------------------------------- the jobs


def parallel_jobs(hc) -> int:
    """How many jobs the launcher runs at once (the joblib launcher; others: one)."""
    if "Joblib" not in str(hc.launcher.get("_target_", "")):
        return 1
    n_jobs = hc.launcher.get("n_jobs") or -1
    return os.cpu_count() or 1 if n_jobs < 0 else n_jobs  # joblib: -1 means every core


@contextmanager
def _claimed_slot(sweep_dir: Path, slots: int) -> Iterator[int]:
    """A slot number no other running job of the sweep holds (a lock file per slot)."""
    from filelock import FileLock, Timeout

    folder = Path(sweep_dir) / ".core-slots"
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(slots):
            lock = FileLock(folder / f"{slot}.lock")
            try:
                lock.acquire(timeout=0)  # held by a running job: try the next slot
            except Timeout:
                continue
            try:
                yield slot
            finally:
                lock.release()
            return
        time.sleep(0.2)


@contextmanager
def share_of_cores(hc) -> Iterator[list[int] | None]:
    """Pin a parallel job to its own share of the cores, with as many torch threads, so
    jobs running side by side do not fight over the same cores."""
    jobs = parallel_jobs(hc)
    if jobs <= 1 or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    import torch

    allowed = sorted(os.sched_getaffinity(os.getppid()))  # the cores the sweep may use
    share = max(1, len(allowed) // jobs)
    with _claimed_slot(Path(hc.sweep.dir), min(jobs, len(allowed))) as slot:
        cores = allowed[slot * share:(slot + 1) * share]
        before, threads = os.sched_getaffinity(0), torch.get_num_threads()
        os.sched_setaffinity(0, cores)
        torch.set_num_threads(len(cores))
        log.info("job %d pinned to cores %s (%d parallel jobs)", hc.job.num, cores, jobs)
        try:
            yield cores
        finally:
            os.sched_setaffinity(0, before)
            torch.set_num_threads(threads)


def run_job(cfg: DictConfig, task: Callable[[DictConfig], float | None]) -> float:
    """Run one job of a sweep; a failure is recorded, not raised, so the others go on."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    record = {"num": hc.job.num, "overrides": list(hc.overrides.task),
              "output_dir": hc.runtime.output_dir}
    try:
        with share_of_cores(hc) as cores:
            record["cores"] = cores
            value = task(cfg)
    except Preempted as err:  # the scheduler's warning: requeue this job, the sweep goes on
        _write_job(hc.sweep.dir, {**record, "status": "PREEMPTED", "error": str(err)})
        err.forward()  # submitit's handler requeues and exits
        raise
    except (Interrupted, KeyboardInterrupt) as err:  # SIGINT / SIGTERM stop the whole sweep
        _write_job(hc.sweep.dir, {**record, "status": "KILLED",
                                  "error": f"{type(err).__name__}: {err}"})
        end_sweep(Path(hc.sweep.dir), cfg, killed=True)
        print("the sweep was interrupted: the jobs not started yet were not run",
              file=sys.stderr)
        # SystemExit passes through Hydra (which catches Exception), so no further job starts.
        sys.exit(getattr(err, "exit_code", 130))
    except Exception as err:  # noqa: BLE001  (any failure of one job)
        # A user error says what and how to fix it, as a single run would; a bug gets its
        # traceback.
        detail = (f"error: {err}" if isinstance(err, RunnerError)
                  else "".join(traceback.format_exception(err)))
        log.error("job %d (%s) failed:\n%s", hc.job.num, " ".join(record["overrides"]),
                  detail)
        _write_job(hc.sweep.dir, {**record, "status": "FAILED",
                                  "error": f"{type(err).__name__}: {err}"})
        if "optuna" in str(hc.sweeper.get("_target_", "")).lower():
            raise  # Optuna marks the trial FAIL and goes on (max_failure_rate permitting)
        return math.nan  # the basic sweeper goes on; the callback reports it at the end
    _write_job(hc.sweep.dir, {**record, "status": "FINISHED", "objective": value})
    return value


def _write_job(sweep_dir: str, record: dict[str, Any]) -> None:
    jobs = Path(sweep_dir) / JOBS_DIR
    jobs.mkdir(parents=True, exist_ok=True)
    write_json(jobs / f"{record['num']}.json", record)  # the callback reads it at the end


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    jobs = Path(sweep_dir) / JOBS_DIR
    records = [json.loads(p.read_text()) for p in jobs.glob("*.json")] if jobs.is_dir() else []
    return sorted(records, key=lambda r: r["num"])


# ------------------------------------------------------------------------ the callback


class SweepCallback(Callback):
    """Registered in conf/config.yaml (hydra.callbacks.sweep)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {"swept": swept_keys(config),
                                "overrides": list(config.hydra.overrides.task)}
        if config.logger.name == "mlflow":
            info.update(_open_parent(config, info))
        write_json(sweep_dir / SWEEP_FILE, info)  # each job reads it as it starts

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if end_sweep(Path(config.hydra.sweep.dir), config):
            sys.exit(1)


def end_sweep(sweep_dir: Path, config: DictConfig, killed: bool = False) -> list[dict]:
    """Close the parent run (KILLED when the sweep was interrupted) and print the summary;
    returns the failed jobs."""
    info = read_sweep_file(sweep_dir)
    jobs = read_jobs(sweep_dir)
    failed = [j for j in jobs if j["status"] != "FINISHED"]
    best = _best(config, jobs)
    if info.get("parent_run_id"):
        status = "KILLED" if killed else "FAILED" if failed else "FINISHED"
        _close_parent(info, jobs, failed, best, status)
    _print_summary(jobs, failed, best, info)
    return failed


def _open_parent(config: DictConfig, info: dict[str, Any]) -> dict[str, Any]:
    uri = tracking_uri(config)
    client = client_for(uri)  # the first call creates and migrates a fresh store
    exp_id = experiment_id(client, config.logger.experiment, uri)
    name, mode = objective(config)
    overrides = " ".join(info["overrides"])
    parent = client.create_run(exp_id, run_name=f"sweep: {overrides}"[:250], tags={
        names.SWEEP_PARENT: "true",
        names.OBJECTIVE: name,
        names.OBJECTIVE_MODE: mode,
        names.SWEPT: ",".join(info["swept"]),
        names.COMMAND: command_line(),
        names.SWEEP_DIR: str(Path(config.hydra.sweep.dir).resolve()),
        # so that a sweep process killed outright gets its parent marked KILLED later
        **process_tags(),
    })
    client.log_param(parent.info.run_id, names.SWEEP_OVERRIDES, overrides[:6000])
    log.info("sweep parent run %s in %s", parent.info.run_id, uri)
    return {"parent_run_id": parent.info.run_id, "tracking_uri": uri}


def _best(config: DictConfig, jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [j for j in jobs if j["status"] == "FINISHED" and j.get("objective") is not None
              and not math.isnan(j["objective"])]
    if not scored:
        return None
    _, mode = objective(config)
    pick = max if mode == "max" else min
    return pick(scored, key=lambda j: j["objective"])


def _close_parent(info: dict[str, Any], jobs: list, failed: list, best: dict | None,
                  status: str) -> None:
    client = client_for(info["tracking_uri"])
    parent = info["parent_run_id"]
    client.log_metric(parent, names.SWEEP_JOBS, len(jobs))
    client.log_metric(parent, names.SWEEP_FAILED, len(failed))
    if failed:
        client.set_tag(parent, names.FAILED_JOBS,
                       "; ".join(f"#{j['num']} {' '.join(j['overrides'])}" for j in failed)[:5000])
    if best is not None:
        client.log_metric(parent, names.BEST_OBJECTIVE, best["objective"])
        client.set_tag(parent, names.BEST_JOB, " ".join(best["overrides"]))
        child = read_run_file(Path(best["output_dir"])).get("mlflow_run_id")
        if child:
            client.set_tag(parent, names.BEST_CHILD_RUN_ID, child)
    client.set_terminated(parent, status=status)


def _print_summary(jobs: list, failed: list, best: dict | None, info: dict[str, Any]) -> None:
    lines = [f"sweep: {len(jobs)} jobs, {len(failed)} failed"]
    if best is not None:
        lines.append(f"best: job #{best['num']} ({' '.join(best['overrides'])}) "
                     f"objective={best['objective']:.4f}")
    for job in failed:
        lines.append(f"{job['status']} job #{job['num']} ({' '.join(job['overrides'])}): "
                     f"{job['error']}")
    if info.get("parent_run_id"):
        lines.append(f"MLflow parent run {info['parent_run_id']}; compare with "
                     "`python -m runner.compare --sweep latest`")
    print("\n".join(lines), file=sys.stderr if failed else sys.stdout)

"""Sweeps (`python -m runner -m ...`): one MLflow parent run, every job a nested child.

The Hydra callback opens the parent before any job starts (which also creates and migrates
the tracking store once, so parallel jobs do not race to do it) and writes sweep.json in
the sweep directory; each job reads it to tag its run as a child with its swept values.
A failing job is recorded and the others go on; at the end the parent gets the job count,
the failures and the best child of each objective (a sweep over heads judges a
classifier by accuracy and a QA model by F1: they are never ranked against each other),
and the sweep exits non-zero listing every failed job.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from runner.config.defaults import objective
from runner.errors import DiskError, Interrupted, Preempted, Pruned, disk_error, user_error
from runner.files import write_json
from runner.track import tags as names
from runner.track.describe import source_tags
from runner.track.model_log import register_champion
from runner.track.origin import command_line, process_tags
from runner.track.slots import join_job_tasks, own_gpu, share_of_cores
from runner.track.store import client_for, experiment_id, tracking_uri
from runner.train import trial
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


def run_job(cfg: DictConfig, task: Callable[[DictConfig], float | None]) -> float:
    """Run one job of a sweep; a failure is recorded, not raised, so the others go on."""
    from hydra.core.hydra_config import HydraConfig

    join_job_tasks()
    hc = HydraConfig.get()
    record = {"num": hc.job.num, "overrides": list(hc.overrides.task),
              "output_dir": hc.runtime.output_dir, "trial": trial.trial_number()}
    try:
        with own_gpu(hc) as gpu, share_of_cores(hc) as cores:
            record.update(cores=cores, gpu=gpu, started=time.time())
            value = task(cfg)
    except Pruned as err:  # the study's pruner stopped it: not a failure
        _write_job(hc.sweep.dir, {**record, "status": "PRUNED", "step": err.step,
                                  "error": str(err)})
        return trial.pruned_result(err.step)
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
        # A user error (a full or read-only disk too) says what and how to fix it, as a
        # single run would; a bug gets its traceback.
        found = user_error(err)
        detail = f"error: {found}" if found else "".join(traceback.format_exception(err))
        log.error("job %d (%s) failed:\n%s", hc.job.num, " ".join(record["overrides"]),
                  detail)
        shown = found or err
        _write_job(hc.sweep.dir, {**record, "status": "FAILED",
                                  "error": f"{type(shown).__name__}: {shown}"})
        if isinstance(found, DiskError) and _in_this_process(hc):
            _stop_on_disk_error(Path(hc.sweep.dir), cfg)
        if "optuna" in str(hc.sweeper.get("_target_", "")).lower():
            raise  # Optuna marks the trial FAIL and goes on (max_failure_rate permitting)
        return math.nan  # the basic sweeper goes on; the callback reports it at the end
    name, mode = objective(cfg)  # this job's own: a sweep over heads has one per head
    _write_job(hc.sweep.dir, {**record, "status": "FINISHED", "objective": value,
                              "objective_name": name, "objective_mode": mode,
                              "head": cfg.head.task})
    return value


def _in_this_process(hc) -> bool:
    """Whether the jobs run one after another in the sweep's own process (Hydra's basic
    launcher), rather than in workers (joblib) or a scheduler's jobs."""
    return str(hc.launcher.get("_target_", "")).endswith("BasicLauncher")


def _stop_on_disk_error(sweep_dir: Path, cfg: DictConfig) -> None:
    """A full or read-only disk stops the sweep: the next job would write to the same disk
    (Hydra's own job files first, which fail with its traceback). The parent run ends
    FAILED listing the job; the command exits 2."""
    end_sweep(sweep_dir, cfg)
    print("the sweep stopped at a disk error: the jobs not started yet were not run",
          file=sys.stderr)
    sys.exit(DiskError.exit_code)  # SystemExit passes through Hydra: no further job starts


def _write_job(sweep_dir: str, record: dict[str, Any]) -> None:
    if os.environ.get("RANK", "0") != "0":
        return  # one record per job, by its first process
    record = {**record, "ended": time.time()}
    jobs = Path(sweep_dir) / JOBS_DIR
    try:
        jobs.mkdir(parents=True, exist_ok=True)
        write_json(jobs / f"{record['num']}.json", record)  # the callback reads it at the end
    except OSError as err:  # the sweep's disk is full too: kept here for the summary
        log.error("job %d: its record could not be written to %s (%s)", record["num"],
                  jobs, err)
        _UNWRITTEN[record["num"]] = record


# Job records a full disk kept out of jobs/: the basic launcher's callback, in this same
# process, still counts them.
_UNWRITTEN: dict[int, dict[str, Any]] = {}


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    jobs = Path(sweep_dir) / JOBS_DIR
    records = [json.loads(p.read_text()) for p in jobs.glob("*.json")] if jobs.is_dir() else []
    written = {r["num"] for r in records}
    records += [r for num, r in _UNWRITTEN.items() if num not in written]
    return sorted(records, key=lambda r: r["num"])


# ------------------------------------------------------------------------ the callback


class SweepCallback(Callback):
    """Registered in conf/config.yaml (hydra.callbacks.sweep)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_study(config)  # before the parent run opens: bad settings leave no trace
        sweep_dir = Path(config.hydra.sweep.dir)
        info: dict[str, Any] = {"swept": swept_keys(config),
                                "overrides": list(config.hydra.overrides.task)}
        _write_sweep_file(sweep_dir, info)  # first: an unwritable sweep dir opens no parent
        if config.logger.name == "mlflow":
            info.update(_open_parent(config, info))
            _write_sweep_file(sweep_dir, info)  # each job reads it as it starts

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if end_sweep(Path(config.hydra.sweep.dir), config):
            sys.exit(1)


def _write_sweep_file(sweep_dir: Path, info: dict[str, Any]) -> None:
    """sweep.json; a sweep directory on a full or read-only disk ends the command with
    runner's message (Hydra would only warn, then fail with a traceback)."""
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_json(sweep_dir / SWEEP_FILE, info)
    except OSError as err:
        found = disk_error(err, f"writing the sweep directory {sweep_dir}",
                           "Free some space (or make it writable), or point hydra.sweep.dir "
                           "at another disk, then run the same command again.")
        if found is None:
            raise
        print(f"error: {found}", file=sys.stderr)
        sys.exit(found.exit_code)


def _check_study(config: DictConfig) -> None:
    from runner.errors import ConfigError
    from runner.track import study

    if not study.is_runner_study(config):
        return
    try:
        study.check(config, list(config.hydra.overrides.task))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


def end_sweep(sweep_dir: Path, config: DictConfig, killed: bool = False) -> list[dict]:
    """Close the parent run (KILLED when the sweep was interrupted) and print the summary;
    returns the failed jobs."""
    info = read_sweep_file(sweep_dir)
    jobs = read_jobs(sweep_dir)
    failed = [j for j in jobs if j["status"] not in ("FINISHED", "PRUNED")]
    pruned = [j for j in jobs if j["status"] == "PRUNED"]
    best = best_per_objective(config, jobs)
    if info.get("parent_run_id"):
        status = "KILLED" if killed else "FAILED" if failed else "FINISHED"
        _close_parent(info, jobs, failed, best, status, len(pruned))
    _print_summary(jobs, failed, best, info, len(pruned))
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
        **source_tags(),
    })
    client.log_param(parent.info.run_id, names.SWEEP_OVERRIDES, overrides[:6000])
    log.info("sweep parent run %s in %s", parent.info.run_id, uri)
    return {"parent_run_id": parent.info.run_id, "tracking_uri": uri,
            "register_as": config.logger.get("register_as")}


def best_per_objective(config: DictConfig, jobs: list[dict[str, Any]]
                       ) -> dict[str, dict[str, Any]]:
    """objective -> its best finished job (with "objective_mode"), in the order the
    objectives first appear. Jobs recorded without their objective take the sweep's.

    A metric name several heads report is kept apart per head (`<head>/<name>`):
    tokencls's entity F1 and qa's answer F1 are both eval/f1, but not comparable."""
    default = objective(config)
    scored = [j for j in jobs if j["status"] == "FINISHED"  # one objective each (a study
              and isinstance(j.get("objective"), (int, float))  # over several has a front)
              and not math.isnan(j["objective"])]
    heads: dict[str, set] = {}
    for job in scored:
        job.setdefault("objective_name", default[0])
        job.setdefault("objective_mode", default[1])
        heads.setdefault(job["objective_name"], set()).add(job.get("head"))
    groups: dict[str, list[dict[str, Any]]] = {}
    for job in scored:
        name = job["objective_name"]
        key = f"{job.get('head')}/{name}" if len(heads[name]) > 1 else name
        groups.setdefault(key, []).append(job)
    best = {}
    for key, alike in groups.items():
        pick = max if alike[0]["objective_mode"] == "max" else min
        best[key] = pick(alike, key=lambda j: j["objective"])
    return best


def _registered_name(info: dict[str, Any], best: dict[str, Any], objective_key: str) -> str:
    """The registered model a best child goes to: logger.register_as itself for a sweep
    with one objective; with several, one model per objective (NAME-eval-f1), so each
    has its own champion."""
    if len(best) == 1:
        return info["register_as"]
    return f"{info['register_as']}-{objective_key.replace('/', '-')}"


def _close_parent(info: dict[str, Any], jobs: list, failed: list,
                  best: dict[str, dict[str, Any]], status: str,
                  pruned: int) -> None:
    client = client_for(info["tracking_uri"])
    parent = info["parent_run_id"]
    client.log_metric(parent, names.SWEEP_JOBS, len(jobs))
    client.log_metric(parent, names.SWEEP_FAILED, len(failed))
    client.log_metric(parent, names.SWEEP_PRUNED, pruned)
    if failed:
        client.set_tag(parent, names.FAILED_JOBS,
                       "; ".join(f"#{j['num']} {' '.join(j['overrides'])}" for j in failed)[:5000])
    children = {name: read_run_file(Path(job["output_dir"])).get("mlflow_run_id")
                for name, job in best.items()}
    for name, job in best.items():
        client.log_metric(parent, names.best_metric(name), job["objective"])
        if children[name]:
            client.set_tag(parent, names.best_child(name), children[name])
            if info.get("register_as"):
                register_champion(info["tracking_uri"], _registered_name(info, best, name),
                                  children[name])
    if best:  # opened with the sweep config's objective; these are the ones its jobs had
        modes = {j["objective_name"]: j["objective_mode"] for j in best.values()}
        client.set_tag(parent, names.OBJECTIVE, ",".join(modes))
        client.set_tag(parent, names.OBJECTIVE_MODE, ",".join(modes.values()))
    if len(best) == 1:  # one objective: the single best of the whole sweep, as before
        ((name, job),) = best.items()
        client.log_metric(parent, names.BEST_OBJECTIVE, job["objective"])
        client.set_tag(parent, names.BEST_JOB, " ".join(job["overrides"]))
        if children[name]:
            client.set_tag(parent, names.BEST_CHILD_RUN_ID, children[name])
    client.set_terminated(parent, status=status)


def _print_summary(jobs: list, failed: list, best: dict[str, dict[str, Any]],
                   info: dict[str, Any], pruned: int) -> None:
    lines = [f"sweep: {len(jobs)} jobs, {len(failed)} failed"
             + (f", {pruned} pruned" if pruned else "")]
    swept = tuple(f"{key}=" for key in info.get("swept", []))
    for name, job in best.items():  # one line per objective, each job by its swept values
        values = [o for o in job["overrides"] if o.lstrip("+~").startswith(swept)]
        lines.append(f"best {name} ({job['objective_mode']}): job #{job['num']} "
                     f"({' '.join(values or job['overrides'])}) = {job['objective']:.4f}")
    for job in failed:
        lines.append(f"{job['status']} job #{job['num']} ({' '.join(job['overrides'])}): "
                     f"{job['error']}")
    if info.get("parent_run_id"):
        lines.append(f"MLflow parent run {info['parent_run_id']}; compare with "
                     "`python -m runner.compare --sweep latest`")
    print("\n".join(lines), file=sys.stderr if failed else sys.stdout)

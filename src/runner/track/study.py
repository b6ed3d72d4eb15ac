"""runner's Optuna sweep (`hydra/sweeper=optuna`, hydra_plugins.runner_optuna_sweeper).

Each round asks the study for up to `n_jobs` trials, launches them as Hydra jobs (any
launcher: basic, joblib, SLURM), then tells the study how each ended: COMPLETE with its
objective(s), PRUNED when the pruner stopped it (runner.train.trial), FAIL otherwise. The
study lives in `storage` (sqlite, any SQLAlchemy URL, or a journal file on a shared file
system), so the same command again resumes it and several launches fill one study.
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.errors import ConfigError, Problem
from runner.train import trial as job_trial
from runner.train.run_file import read_run_file

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid", "cmaes", "nsgaii")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
KEY = "hydra.sweeper"
RESULTS_FILE = "optimization_results.yaml"
RUN_ID_ATTR = "mlflow_run_id"  # the trial's MLflow child run, for the Pareto marks


def is_runner_study(config: DictConfig) -> bool:
    return "runner_optuna_sweeper" in str(config.hydra.sweeper.get("_target_", ""))


def directions_of(conf: DictConfig) -> list[str]:
    direction = conf.direction
    return [str(direction)] if isinstance(direction, str) else [str(d) for d in direction]


def storage_of(conf: DictConfig, sweep_dir: str) -> str:
    """The study's storage; without one, a journal file in the sweep folder (the jobs need
    a storage to report to, and the study stays readable)."""
    url = conf.storage or job_trial.JOURNAL_PREFIX + str(Path(sweep_dir) / "optuna.log")
    return job_trial.absolute_storage(str(url))


# --------------------------------------------------------------------- search space


def _distribution(override):
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
    if override.is_range_sweep():  # Hydra's range stops before `stop`, as Python's does
        items = list(override.sweep_iterator())
        if not items:
            raise ValueError(f"{override.input_line}: the range is empty")
        if all(isinstance(x, int) for x in (value.start, value.stop, value.step)):
            return IntDistribution(int(items[0]), int(items[-1]), step=int(value.step))
        return FloatDistribution(float(items[0]), float(items[-1]), step=float(value.step))
    if override.is_interval_sweep():
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: not a search space Optuna can sample "
                     "(use interval, tag(log, interval), range or choice)")


def search_space(conf: DictConfig, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The distributions (from `params` and sweep syntax on the command line) and the
    fixed overrides every trial gets."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{k}={v}" for k, v in (conf.get("params") or {}).items()] + list(arguments)
    space, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(lines):
        if override.is_sweep_override():
            space[override.get_key_element()] = _distribution(override)
        else:
            fixed.append(override.input_line)
    return space, fixed


def grid_of(space: dict[str, Any]) -> dict[str, list]:
    from optuna.distributions import CategoricalDistribution

    grid = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            grid[name] = list(dist.choices)
        elif dist.step is not None and not dist.log:
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            grid[name] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ValueError(f"{name}: the grid sampler needs discrete values (choice or "
                             "range), not an interval")
    return grid


# ----------------------------------------------------------------------- validation


def problems(config: DictConfig, arguments: list[str]) -> list[Problem]:
    """Everything wrong with the sweeper's settings, found before any trial starts."""
    conf, found = config.hydra.sweeper, []
    if conf.sampler not in SAMPLERS:
        found.append(Problem(f"{KEY}.sampler", f"unknown sampler {conf.sampler!r}",
                             f"use one of {', '.join(SAMPLERS)}"))
    if conf.pruner not in PRUNERS:
        found.append(Problem(f"{KEY}.pruner", f"unknown pruner {conf.pruner!r}",
                             f"use one of {', '.join(PRUNERS)}"))
    found += _direction_problems(conf)
    if conf.n_trials < 0 or (conf.max_trials is not None and conf.max_trials < 1):
        found.append(Problem(f"{KEY}.n_trials", "n_trials must be >= 0 and max_trials >= 1",
                             "set a positive number of trials"))
    if conf.storage:
        problem = job_trial.storage_problem(str(conf.storage))
        if problem is not None:
            found.append(problem)
    try:
        space, _ = search_space(conf, arguments)
        if conf.sampler == "grid":
            grid_of(space)
    except Exception as err:  # noqa: BLE001  (the grammar's and Optuna's own messages)
        found.append(Problem(f"{KEY}.params", str(err).splitlines()[0],
                             "write each search space as interval(a, b), "
                             "tag(log, interval(a, b)), range(a, b[, step]) or choice(a, b)"))
    return found


def _direction_problems(conf: DictConfig) -> list[Problem]:
    found = []
    directions = directions_of(conf)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        found.append(Problem(f"{KEY}.direction", f"unknown direction {', '.join(bad)}",
                             "use maximize or minimize (a list for several objectives)"))
    objectives = list(conf.objectives or [])
    if len(directions) > 1 and len(objectives) != len(directions):
        found.append(Problem(f"{KEY}.objectives", f"{len(directions)} directions but "
                             f"{len(objectives)} objectives ({', '.join(objectives) or 'none'})",
                             "name one metric per direction, e.g. objectives: "
                             "[eval/accuracy, params/trainable]"))
    if objectives and len(objectives) != len(directions) and len(directions) == 1:
        found.append(Problem(f"{KEY}.direction", f"one direction for {len(objectives)} "
                             "objectives", "give one direction per objective"))
    if len(directions) > 1 and conf.pruner != "none":
        found.append(Problem(f"{KEY}.pruner", f"{conf.pruner!r} with {len(directions)} "
                             "objectives: Optuna prunes single-objective studies only",
                             f"set {KEY}.pruner=none"))
    return found


def check(config: DictConfig, arguments: list[str]) -> None:
    found = problems(config, arguments)
    if found:
        raise ConfigError(found)


# ------------------------------------------------------------------------- the study


def _options(node) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True) if node else {}


def _sampler(conf: DictConfig, space: dict[str, Any], seed: int | None):
    import optuna.samplers as samplers

    options = _options(conf.sampler_options)
    if conf.sampler == "grid":
        return samplers.GridSampler(grid_of(space), seed=seed)
    kind = {"tpe": samplers.TPESampler, "random": samplers.RandomSampler,
            "cmaes": samplers.CmaEsSampler, "nsgaii": samplers.NSGAIISampler}[conf.sampler]
    return kind(seed=seed, **options)


def _pruner(conf: DictConfig):
    return job_trial.make_pruner(conf.pruner, _options(conf.pruner_options))


def open_study(conf: DictConfig, storage: str, space: dict[str, Any]):
    """Create the study, or load it when it exists (the same command resumes it)."""
    import optuna

    try:
        study = optuna.create_study(
            study_name=conf.study_name, storage=job_trial.open_storage(storage),
            directions=directions_of(conf), pruner=_pruner(conf), load_if_exists=True)
    except ValueError as err:  # e.g. the stored study has other directions
        raise ConfigError([Problem(f"{KEY}.study_name", f"study {conf.study_name!r} in "
                                   f"{storage}: {err}", "use a new study_name, or the "
                                   "study's own direction(s)")]) from err
    # A fresh seed per resumption: the same seed again would repeat the first trials.
    seed = conf.seed
    if seed is not None:
        seed += len(study.get_trials(deepcopy=False))
    study.sampler = _sampler(conf, space, seed)
    for params in conf.enqueue or []:
        study.enqueue_trial(OmegaConf.to_container(params, resolve=True), skip_if_exists=True)
    return study


def ask_lock(storage: str):
    """A lock around counting and asking, so launches sharing a file-based study keep
    max_trials exactly (a server database: best effort)."""
    from filelock import FileLock

    from runner.files import sqlite_file

    path = job_trial.journal_path(storage) or sqlite_file(storage)
    return FileLock(f"{path}.ask.lock") if path is not None else nullcontext()


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step,
                                             log=dist.log)
        else:
            values[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step,
                                               log=dist.log)
    return values


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def trial_overrides(trial, space: dict[str, Any], fixed: list[str], conf: DictConfig,
                    storage: str) -> list[str]:
    """A trial's job: the fixed overrides, its sampled values, and (as environment
    variables, not config) where it reports to."""
    values = suggest(trial, space)
    env = job_trial.env_for_trial(storage, trial.study.study_name, trial.number,
                                  list(conf.objectives or []), conf.pruner,
                                  _options(conf.pruner_options))
    return [*fixed, *(f"{k}={v}" for k, v in values.items()),
            *(f"++hydra.job.env_set.{k}={_quoted(v)}" for k, v in env.items())]


def tell(study, trial, returned, directions: int) -> str:
    """Record how the trial's job ended; returns the state's name."""
    from optuna.trial import TrialState

    try:
        value = returned.return_value  # raises the job's exception when it failed
    except Exception as err:  # noqa: BLE001
        log.warning("trial %d failed: %s", trial.number, err)
        return _tell(study, trial, TrialState.FAIL)
    if job_trial.pruned_step(value) is not None:
        return _tell(study, trial, TrialState.PRUNED)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if (len(values) != directions or any(v is None or math.isnan(float(v)) for v in values)):
        log.warning("trial %d returned %r, not %d number(s)", trial.number, value, directions)
        return _tell(study, trial, TrialState.FAIL)
    return _tell(study, trial, TrialState.COMPLETE, [float(v) for v in values])


def _tell(study, trial, state, values=None) -> str:
    try:
        study.tell(trial, state=state, values=values)
    except RuntimeError as err:  # the grid sampler stops the study when its grid is done
        if "Study.stop" not in str(err):
            raise
    return state.name


def remember_run(trial, returned) -> None:
    """Keep the trial's MLflow run id with the trial (for the Pareto marks later)."""
    hydra_cfg = getattr(returned, "hydra_cfg", None)
    if hydra_cfg is None:
        return
    run_id = read_run_file(Path(hydra_cfg.hydra.runtime.output_dir)).get("mlflow_run_id")
    if run_id:
        trial.set_user_attr(RUN_ID_ATTR, run_id)
    trial.set_user_attr("output_dir", str(hydra_cfg.hydra.runtime.output_dir))


def write_results(study, sweep_dir: str, storage: str) -> dict[str, Any]:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    summary: dict[str, Any] = {"name": "optuna", "study_name": study.study_name,
                               "storage": storage, "trials": len(states),
                               **{s.name.lower(): states.count(s) for s in TrialState}}
    done = TrialState.COMPLETE in states
    if len(study.directions) == 1 and done:
        summary.update(best_params=study.best_trial.params, best_value=study.best_value)
    elif done:
        summary["solutions"] = [{"number": t.number, "params": t.params, "values": t.values}
                                for t in study.best_trials]
    os.makedirs(sweep_dir, exist_ok=True)
    OmegaConf.save(OmegaConf.create(summary), Path(sweep_dir) / RESULTS_FILE)
    return summary


def record_in_mlflow(study, config: DictConfig, storage: str, parent: str | None) -> None:
    """The sweep's parent names its study; in a study over several objectives, every
    trial's run is tagged runner.pareto=true|false (the front over all its launches)."""
    from runner.track import tags as names
    from runner.track.store import client_for, tracking_uri

    if config.logger.name != "mlflow":
        return
    client = client_for(tracking_uri(config))
    if parent:
        client.set_tag(parent, names.STUDY, study.study_name)
        client.set_tag(parent, names.STUDY_STORAGE, storage)
    if len(study.directions) < 2:
        return
    front = {t.number for t in study.best_trials}
    log.info("Pareto front: trials %s", sorted(front))
    for t in study.get_trials(deepcopy=False):
        run_id = t.user_attrs.get(RUN_ID_ATTR)
        if run_id:
            try:
                client.set_tag(run_id, names.PARETO, str(t.number in front).lower())
            except Exception as err:  # noqa: BLE001  (a run in another store)
                log.warning("cannot mark trial %d's run %s: %s", t.number, run_id, err)

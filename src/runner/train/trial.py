"""The Optuna trial a sweep job belongs to: storage, reporting, pruning, its result.

runner's Optuna sweeper (hydra_plugins.runner_optuna_sweeper, runner.track.study) asks the
study for a trial and hands the job its storage, study name and trial number through
environment variables (hydra.job.env_set, so they reach joblib and SLURM workers too).
The training loop reports the objective at each evaluation and stops when the pruner says
so; the job's return value tells the sweeper whether it finished or was pruned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runner.errors import Problem, Pruned
from runner.files import SQLITE, sqlite_file

STORAGE_ENV = "RUNNER_TRIAL_STORAGE"
STUDY_ENV = "RUNNER_TRIAL_STUDY"
NUMBER_ENV = "RUNNER_TRIAL_NUMBER"
OBJECTIVES_ENV = "RUNNER_TRIAL_OBJECTIVES"  # comma-separated; set for multi-objective studies
PRUNER_ENV = "RUNNER_TRIAL_PRUNER"  # JSON: the pruner's name and options (not in storage)
PRUNED_KEY = "runner.pruned_at_step"  # the job's return value when pruned
JOURNAL_PREFIX = "journal://"
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


# ------------------------------------------------------------------------------ storage


def journal_path(url: str) -> Path | None:
    """The journal file an Optuna storage string names (journal:///path, or a file path
    ending in .log / .journal / .jsonl), else None."""
    if url.startswith(JOURNAL_PREFIX):
        return Path(url[len(JOURNAL_PREFIX):]).expanduser()
    if "://" not in url and url.endswith(JOURNAL_SUFFIXES):
        return Path(url).expanduser()
    return None


def absolute_storage(url: str) -> str:
    """The same storage, named so that any working directory finds it (jobs may run
    elsewhere): journal files and sqlite files as absolute paths."""
    journal = journal_path(url)
    if journal is not None:
        return JOURNAL_PREFIX + str(journal.resolve())
    path = sqlite_file(url)
    if path is not None and not path.is_absolute():
        return SQLITE + str(path.expanduser().resolve())
    return url


def storage_problem(url: str) -> Problem | None:
    """Why `url` is no storage runner can open (checked before the sweep starts)."""
    journal = journal_path(url)
    fix = ("use sqlite:///optuna.db, another SQLAlchemy URL (postgresql://user@host/db), "
           "or a journal file for shared file systems: journal:///path/optuna.log")
    if journal is not None:
        folder = journal.resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            return Problem("hydra.sweeper.storage", f"{url!r}: cannot write the journal file "
                           f"in {folder}", "point it at a writable folder")
        return None
    if "://" not in url:
        return Problem("hydra.sweeper.storage", f"{url!r} is neither a database URL nor a "
                       "journal file", fix)
    path = sqlite_file(absolute_storage(url))
    if path is not None:
        folder = path.parent
        if not (os.access(path, os.W_OK) if path.exists()
                else folder.is_dir() and os.access(folder, os.W_OK)):
            return Problem("hydra.sweeper.storage", f"{url!r}: cannot write {path}",
                           "point it at a writable file or folder")
    return _driver_problem(url)


def _driver_problem(url: str) -> Problem | None:
    """Why SQLAlchemy cannot open `url` (an unknown dialect, a driver not installed)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        create_engine(url).dispose()  # finds the dialect and driver; connects to nothing
    except (ArgumentError, NoSuchModuleError, ImportError) as err:
        return Problem("hydra.sweeper.storage", f"{url!r} is no database URL runner can open "
                       f"({err})", "use sqlite:///optuna.db, postgresql://user@host/db "
                       "(with its driver installed), ... or a journal file: "
                       "journal:///path/optuna.log")
    return None


def open_storage(url: str):
    """An Optuna storage for `url` (a journal file, or any SQLAlchemy URL)."""
    import optuna

    journal = journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    return optuna.storages.RDBStorage(url)


# --------------------------------------------------------------------- the job's side


def make_pruner(name: str, options: dict[str, Any]):
    """median | hyperband | none, with the pruner's keyword arguments."""
    import optuna.pruners as pruners

    if name == "none":
        return pruners.NopPruner()
    kind = {"median": pruners.MedianPruner, "hyperband": pruners.HyperbandPruner}[name]
    return kind(**options)


def env_for_trial(storage: str, study: str, number: int, objectives: list[str] | None,
                  pruner: str, pruner_options: dict[str, Any]) -> dict[str, str]:
    env = {STORAGE_ENV: storage, STUDY_ENV: study, NUMBER_ENV: str(number),
           PRUNER_ENV: json.dumps({"name": pruner, "options": pruner_options})}
    if objectives:
        env[OBJECTIVES_ENV] = ",".join(objectives)
    return env


def trial_number() -> int | None:
    value = os.environ.get(NUMBER_ENV)
    return int(value) if value else None


def study_name() -> str:
    return os.environ.get(STUDY_ENV, "")


def objectives() -> list[str] | None:
    value = os.environ.get(OBJECTIVES_ENV)
    return value.split(",") if value else None


class Reporter:
    """Reports one metric of each evaluation to the job's trial; says when to prune."""

    def __init__(self, trial, metric: str, accelerator):
        self.trial, self.metric, self.accelerator = trial, metric, accelerator

    def check(self, metrics: dict[str, float], step: int) -> None:
        """Report, and raise Pruned when the pruner stops the trial (every rank agrees)."""
        value = metrics.get(self.metric)
        stop = False
        if self.accelerator.is_main_process and value is not None:
            self.trial.report(float(value), step)
            stop = self.trial.should_prune()
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            stop = broadcast_object_list([stop])[0]
        if stop:
            raise Pruned(step, self.metric, float(value) if value is not None else float("nan"))


def reporter(objective_name: str, accelerator) -> Reporter | None:
    """The job's trial, when it runs in runner's Optuna sweep; else None."""
    number = trial_number()
    if number is None:
        return None
    wanted = objectives()
    if wanted and len(wanted) > 1:
        return None  # Optuna prunes single-objective studies only
    trial = None
    if accelerator.is_main_process:
        import optuna

        pruner = json.loads(os.environ.get(PRUNER_ENV) or '{"name": "none", "options": {}}')
        study = optuna.load_study(study_name=os.environ[STUDY_ENV],
                                  storage=open_storage(os.environ[STORAGE_ENV]),
                                  pruner=make_pruner(pruner["name"], pruner["options"]))
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, number)
        trial = optuna.trial.Trial(study, trial_id)
    metric = wanted[0] if wanted else objective_name
    return Reporter(trial, metric, accelerator)


def result(value: float | None, metrics: dict[str, float]) -> Any:
    """What the job returns to the sweeper: the objective, or the study's objectives."""
    wanted = objectives()
    if not wanted:
        return value
    missing = [k for k in wanted if k not in metrics]
    if missing:
        from runner.errors import RunnerError

        raise RunnerError(f"hydra.sweeper.objectives names {', '.join(missing)}, which this "
                          f"run did not measure; it has: {', '.join(sorted(metrics))}")
    return [float(metrics[k]) for k in wanted]


def pruned_result(step: int) -> dict[str, int]:
    return {PRUNED_KEY: step}


def pruned_step(returned: Any) -> int | None:
    """The step a job was pruned at, from its return value; None when it was not."""
    if isinstance(returned, dict) and PRUNED_KEY in returned:
        return int(returned[PRUNED_KEY])
    return None

"""The names runner writes into MLflow and reads back: tags, params and metrics.

One list for the run's tracker, the sweep's parent run and `runner.compare`, so a writer
and its readers cannot drift apart. Standard library only: `runner.compare --help` imports
this.
"""

from __future__ import annotations

# ----------------------------------------------------------------- tags on every run

FAMILY = "runner.family"
HEAD = "runner.head"
FREEZE = "runner.freeze"
INIT = "runner.init"
MODEL = "runner.model"
NAME = "runner.name"  # the full run name (MLflow's run-name column is shorter)
COMMAND = "runner.command"
GIT_COMMIT = "runner.git_commit"
HOST = "runner.host"
PID = "runner.pid"
OBJECTIVE = "runner.objective"  # the metric the run (or sweep) is judged by
OBJECTIVE_MODE = "runner.objective_mode"  # max | min: the one record of its direction
OUTPUT_DIR = "runner.output_dir"
NUM_PROCESSES = "runner.num_processes"

# how a run ended, when not plainly
RESUMED = "runner.resumed"
ERROR = "runner.error"
KILLED_REASON = "runner.killed_reason"
PREEMPTED = "runner.preempted"
PRUNED = "runner.pruned"  # "true": the Optuna pruner stopped the trial (status KILLED)
PRUNED_STEP = "runner.pruned_step"

# ---------------------------------------------------------------------------- sweeps

SWEEP_PARENT = "runner.sweep_parent"  # "true" on a sweep's parent run
SWEEP_DIR = "runner.sweep_dir"
SWEPT = "runner.swept"  # on the parent: "key1,key2"
SWEPT_PREFIX = SWEPT + "."  # on a child: one tag per swept key, runner.swept.<key>
FAILED_JOBS = "runner.failed_jobs"
BEST_JOB = "runner.best_job"
BEST_CHILD_RUN_ID = "runner.best_child_run_id"
STUDY = "runner.study"  # an Optuna sweep's study name (parent and children)
STUDY_STORAGE = "runner.study_storage"
TRIAL = "runner.trial"  # a child's Optuna trial number
PARETO = "runner.pareto"  # "true" on the children on a multi-objective study's Pareto front

# ----------------------------------------------------------------- MLflow's own tags

PARENT_RUN_ID = "mlflow.parentRunId"  # makes a run a nested child in the MLflow UI
RUN_NAME = "mlflow.runName"

# --------------------------------------------------------------------------- params

SWEEP_OVERRIDES = "sweep.overrides"

# -------------------------------------------------------------------------- metrics

OBJECTIVE_METRIC = "objective"
TOTAL = "params/total"
TRAINABLE = "params/trainable"
FROZEN = "params/frozen"
FRACTION = "params/trainable_fraction"
EVAL_PREFIX = "eval/"
SWEEP_JOBS = "sweep/jobs"
SWEEP_FAILED = "sweep/failed"
SWEEP_PRUNED = "sweep/pruned"
BEST_OBJECTIVE = "best/objective"


def swept(key: str) -> str:
    """The tag a sweep child carries its value of `key` in."""
    return SWEPT_PREFIX + key

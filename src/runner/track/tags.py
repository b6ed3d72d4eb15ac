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
BEST_CHILD_RUN_ID = "runner.best_child_run_id"  # only when all jobs share one objective
BEST_CHILD_PREFIX = "runner.best_child."  # one per objective: runner.best_child.<objective>
STUDY = "runner.study"  # an Optuna sweep's study name (parent and children)
STUDY_STORAGE = "runner.study_storage"
TRIAL = "runner.trial"  # a child's Optuna trial number
PARETO = "runner.pareto"  # "true" on the children on a multi-objective study's Pareto front

# ----------------------------------------------------------------- MLflow's own tags

PARENT_RUN_ID = "mlflow.parentRunId"  # makes a run a nested child in the MLflow UI
RUN_NAME = "mlflow.runName"
NOTE = "mlflow.note.content"  # the run's description
SOURCE_NAME = "mlflow.source.name"  # the Source column
SOURCE_TYPE = "mlflow.source.type"
SOURCE_GIT_COMMIT = "mlflow.source.git.commit"
USER = "mlflow.user"
EXPERIMENT_KIND = "mlflow.experimentKind"  # on the experiment: which view the UI opens
MODEL_TRAINING = "custom_model_development"  # ... the model-training one
CHAMPION = "champion"  # the registry alias of a sweep's best model

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
BEST_OBJECTIVE = "best/objective"  # only when all jobs share one objective
BEST_PREFIX = "best/"  # one per objective: best/<objective>, e.g. best/eval/accuracy


def swept(key: str) -> str:
    """The tag a sweep child carries its value of `key` in."""
    return SWEPT_PREFIX + key


def best_metric(objective: str) -> str:
    """The sweep parent's metric holding the best value of `objective` (e.g. eval/f1)."""
    return BEST_PREFIX + objective


def best_child(objective: str) -> str:
    """The sweep parent's tag holding the run id of the best child by `objective`."""
    return BEST_CHILD_PREFIX + objective


# ------------------------------------------------- runner.evaluate on a finished run

TEST_PREFIX = "test/"
TEST_SPLIT = "runner.test_split"  # where the test/* metrics were scored from
EVALUATION_OF = "runner.evaluation_of"  # on an evaluation run: the trained run's id

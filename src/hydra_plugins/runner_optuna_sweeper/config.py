"""The sweeper's settings, registered as `hydra/sweeper=optuna` (Hydra imports every module
under hydra_plugins when it starts, which runs the registration below)."""

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class RunnerOptunaSweeperConf:
    _target_: str = "hydra_plugins.runner_optuna_sweeper.sweeper.RunnerOptunaSweeper"
    # maximize | minimize, or a list of them with as many `objectives`
    direction: Any = "minimize"
    # metrics the trial returns, one per direction (eval/..., params/trainable, ...);
    # null: each trial's own trainer.objective
    objectives: Optional[list[str]] = None
    study_name: Optional[str] = None
    # sqlite:///optuna.db, any SQLAlchemy URL, or a journal file (journal:///path/optuna.log
    # or a path ending in .log) for shared file systems; null: a journal in the sweep folder
    storage: Optional[str] = None
    n_trials: int = 20  # trials this launch runs (the study may already hold others)
    max_trials: Optional[int] = None  # stop when the study holds this many trials
    n_jobs: int = 1  # trials asked for and launched together (the launcher's parallelism)
    max_failure_rate: float = 0.0
    sampler: str = "tpe"  # tpe | random | grid | cmaes | nsgaii
    seed: Optional[int] = None
    sampler_options: Any = None  # keyword arguments of the sampler
    pruner: str = "none"  # median | hyperband | none
    pruner_options: Any = None  # ... of the pruner
    enqueue: list[Any] = field(default_factory=list)  # parameter sets to try first
    params: Optional[dict[str, str]] = None  # the search space, in Hydra's override grammar


ConfigStore.instance().store(group="hydra/sweeper", name="optuna",
                             node=RunnerOptunaSweeperConf, provider="runner")

"""The Hydra Sweeper: rounds of ask, launch, tell on an Optuna study (runner.track.study)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class RunnerOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings  # the same values as config.hydra.sweeper, read from there
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: list[str]) -> Any:
        from runner.errors import RunnerError

        try:
            return self._sweep(arguments)
        except RunnerError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)

    def _sweep(self, arguments: list[str]) -> dict[str, Any]:
        from runner.track import study as studies
        from runner.track.sweep import read_sweep_file

        config = self.config
        conf = config.hydra.sweeper
        studies.check(config, arguments)
        space, fixed = studies.search_space(conf, arguments)
        storage = studies.storage_of(conf, config.hydra.sweep.dir)
        study = studies.open_study(conf, storage, space)
        log.info("study %r in %s (%d trials so far), sampler %s, pruner %s", study.study_name,
                 storage, len(study.get_trials(deepcopy=False)), conf.sampler, conf.pruner)
        launched = 0
        while launched < conf.n_trials:
            trials = self._ask(study, conf, storage, min(conf.n_jobs, conf.n_trials - launched))
            if not trials:
                break
            jobs = [studies.trial_overrides(t, space, fixed, conf, storage) for t in trials]
            returns = self.launcher.launch(jobs, initial_job_idx=launched)
            launched += len(trials)
            states = []
            for trial, returned in zip(trials, returns, strict=True):
                studies.remember_run(trial, returned)
                states.append(studies.tell(study, trial, returned, len(study.directions)))
            if states.count("FAIL") / len(states) > conf.max_failure_rate:
                log.error("%d of %d trials failed (max_failure_rate=%s)", states.count("FAIL"),
                          len(states), conf.max_failure_rate)
                break
        summary = studies.write_results(study, config.hydra.sweep.dir, storage)
        parent = read_sweep_file(Path(config.hydra.sweep.dir)).get("parent_run_id")
        studies.record_in_mlflow(study, config, storage, parent)
        log.info("study %r: %d trials, %d complete, %d pruned, %d failed", study.study_name,
                 summary["trials"], summary["complete"], summary["pruned"], summary["fail"])
        return summary

    def _ask(self, study, conf: DictConfig, storage: str, wanted: int) -> list:
        """Up to `wanted` new trials, fewer when the study reaches max_trials."""
        from runner.track import study as studies

        with studies.ask_lock(storage):
            if conf.max_trials is not None:
                wanted = min(wanted, conf.max_trials - len(study.get_trials(deepcopy=False)))
            grid = getattr(study.sampler, "is_exhausted", None)
            if grid is not None and grid(study):
                return []
            return [study.ask() for _ in range(max(0, wanted))]

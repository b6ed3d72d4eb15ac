"""MLflow tracking: one run per experiment, honest statuses, nothing silently truncated.

The run is managed with MlflowClient (not the fluent mlflow.start_run), so no global
"active run" and no MLFLOW_RUN_ID in the environment can hijack it. Only the main process
of a multi-process launch logs. The tag, param and metric names it writes are listed in
runner.track.tags, where `runner.compare` and the sweep parent read them too.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.errors import Interrupted, Preempted, Pruned, TrackingError
from runner.track import tags as names
from runner.track.buffer import Outbox, unreachable
from runner.track.describe import source_tags
from runner.track.origin import command_line, process_tags
from runner.track.store import (
    client_for,
    experiment_id,
    mark_orphaned_runs,
    run_exists,
    tracking_uri,
)
from runner.track.sweep import sweep_tags
from runner.track.system import system_metrics
from runner.train import trial
from runner.train.run_file import read_run_file, write_run_file

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000  # MLflow's limit for a param value
MAX_RUN_NAME = 250  # MLflow's run-name column; the full name is kept in tag runner.name
STALE_ON_RESUME = (names.ERROR, names.KILLED_REASON)  # about the interrupted attempt


class NullTracker:
    """logger=none, and every process but the main one."""

    run_id: str | None = None

    def log_config(self, cfg: DictConfig, final: bool = False) -> None:
        pass

    def log_params(self, params: dict[str, str], final: bool = False) -> None:
        pass

    def log_plan(self, model, plan, folder: str = "freeze", step: int | None = None) -> None:
        pass

    def log_datasets(self, raw, data_cfg) -> None:
        pass

    def describe(self, cfg: DictConfig, plan, raw) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def finish(self, metrics, objective_name, objective_value, model_dir,
               log_model: bool = False) -> None:
        pass


# ------------------------------------------------------------------------------ params


def flat_params(cfg: DictConfig) -> dict[str, str]:
    from runner.config.naming import flatten

    resolved = OmegaConf.to_container(cfg, resolve=True)
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v)
            for k, v in flatten(resolved).items()}


# ----------------------------------------------------------------------------- tracker


class MlflowTracker:
    def __init__(self, client, run_id: str, uri: str | None = None,
                 cfg: DictConfig | None = None, in_sweep: bool = False):
        self.client = client
        self.run_id = run_id
        self.uri = uri
        self.cfg = cfg
        self.in_sweep = in_sweep  # a sweep registers its best child, not every child
        self.description = ""
        self.outbox = Outbox(client, run_id, uri)  # every write; kept while the server is away
        self.model_dir: Path | None = None

    def log_params(self, params: dict[str, str], final: bool = False) -> None:
        """Log params not yet on the run; a value over MLflow's limit goes whole to an
        artifact, and the param says where. Values still None (e.g. head.num_labels before
        the data is read) wait for a later call, since a param cannot change once logged."""
        from mlflow.entities import Param

        existing = self.outbox.read(lambda: self.client.get_run(self.run_id).data.params, {})
        batch = []
        for key, value in params.items():
            if value == "None" and not final:
                continue
            if len(value) > MAX_PARAM_LENGTH:
                artifact = f"params/{key}.txt"
                self._log_text(value, artifact)
                value = f"(too long for a param: {len(value)} characters; see artifact {artifact})"
            if key in existing:
                continue  # resumed run: the same hyperparameters are already recorded
            batch.append(Param(key, value))
        self.outbox.add_params(batch)

    def log_config(self, cfg: DictConfig, final: bool = False) -> None:
        """Params and config/resolved.yaml; `final` once the data has settled the rest."""
        self.log_params(flat_params(cfg), final=final)
        self._log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/resolved.yaml")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.outbox.metrics_at(metrics, step)

    def log_plan(self, model, plan, folder: str = "freeze", step: int | None = None) -> None:
        """The plan's counts and artifacts (under `folder`). Counts at `step`; None: the
        plan the run starts with, at step 0."""
        from runner.model.report import module_table

        counts = {names.TOTAL: plan.total, names.TRAINABLE: plan.trainable,
                  names.FROZEN: plan.frozen, names.FRACTION: plan.trainable_fraction}
        if step is not None:  # a stage of freeze=gradual began: MLflow plots the schedule
            self.log_metrics(counts, step=step)
        elif not counts.keys() <= self.outbox.read(
                lambda: self.client.get_run(self.run_id).data.metrics.keys(), set()):
            self.log_metrics(counts, step=0)  # a resumed run has them already (same config)
        rows = module_table(model, plan, depth=99)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["name", "class", "total", "trainable",
                                                     "frozen"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        self._log_text(buffer.getvalue(), f"{folder}/plan.csv")
        decisions = "\n".join(f"{d.param.name}\t{d.param.numel}\t"
                              f"{'trainable' if d.trainable else 'frozen'}\t{d.rule}"
                              for d in plan.decisions)
        self._log_text("name\tnumel\tstate\trule\n" + decisions + "\n",
                       f"{folder}/parameters.tsv")
        if plan.notes:
            self._log_text("\n".join(plan.notes) + "\n", f"{folder}/notes.txt")
        if plan.adapters:  # the settings as used (targets resolved), with the counts
            self._log_text(json.dumps(plan.adapters, indent=2) + "\n", "freeze/adapters.json")

    def log_datasets(self, raw, data_cfg) -> None:
        """Every split in the run's Datasets panel; a failure costs a warning, not the run."""
        from runner.track.inputs import dataset_inputs

        try:
            self.client.log_inputs(self.run_id, datasets=dataset_inputs(raw, data_cfg))
        except Exception as err:  # noqa: BLE001
            log.warning("the datasets were not recorded: %s: %s", type(err).__name__, err)

    def describe(self, cfg: DictConfig, plan, raw) -> None:
        from runner.track.describe import plan_paragraph

        self.description = plan_paragraph(cfg, plan, raw)
        self.client.set_tag(self.run_id, names.NOTE, self.description)

    def finish(self, metrics: dict[str, float], objective_name: str,
               objective_value: float | None, model_dir: Path | None,
               log_model: bool = False) -> None:
        self.model_dir = model_dir
        if objective_value is not None:
            self.log_metrics({names.OBJECTIVE_METRIC: objective_value}, step=0)
        if not log_model or model_dir is None:
            return
        if self.outbox.down and not self.outbox.send(now=True):  # one more try, not a wait
            log.warning("the model is not logged to MLflow: the server %s is away (it is saved "
                        "in %s)", self.uri, model_dir)
            return
        self._log_model(model_dir)

    def _log_model(self, model_dir: Path) -> None:
        """An MLflow model (registered with logger.register_as, outside sweeps); if MLflow
        cannot make one, the saved directory is kept as plain artifacts and a warning says
        why."""
        from runner.track.model_log import log_model, register

        try:
            from runner.tasks.qa import no_answer_threshold

            head = self.cfg.head
            threshold = no_answer_threshold(head) if head.task == "qa" else None
            model_id = log_model(self.client, self.uri, self.run_id, model_dir, head.task,
                                 self.description, threshold)
        except Exception as err:  # noqa: BLE001
            log.warning("the model could not be logged as an MLflow model (%s: %s); its "
                        "files are kept as the run's artifacts under model/",
                        type(err).__name__, err)
            try:
                self.client.log_artifacts(self.run_id, str(model_dir), artifact_path="model")
            except Exception as lost:
                if not unreachable(lost):
                    raise
                log.warning("the model's files were not sent either (it is saved in %s)",
                            model_dir)
            return
        name = self.cfg.logger.get("register_as")
        if name and not self.in_sweep:
            try:
                register(self.uri, name, model_id)
            except Exception as err:  # noqa: BLE001
                log.warning("the model was not registered as %s: %s: %s", name,
                            type(err).__name__, err)

    def _log_text(self, text: str, artifact_file: str) -> None:
        self.outbox.add_text(text, artifact_file)


def _tags(cfg: DictConfig, where, objective: tuple[str, str]) -> dict[str, str]:
    from accelerate import PartialState

    tags = {
        names.FAMILY: cfg.model.family,
        names.HEAD: cfg.head.task,
        names.FREEZE: cfg.freeze.strategy,
        names.INIT: cfg.model.init,
        names.MODEL: where.choices.get("model", cfg.model.family),
        names.COMMAND: command_line(),
        **process_tags(),
        names.OBJECTIVE: objective[0],
        names.OBJECTIVE_MODE: objective[1],
        names.OUTPUT_DIR: str(where.output_dir),
        names.NUM_PROCESSES: str(PartialState().num_processes),
        **source_tags(),
    }
    if names.SOURCE_GIT_COMMIT in tags:  # runner's own name for it, read by runner.compare
        tags[names.GIT_COMMIT] = tags[names.SOURCE_GIT_COMMIT]
    if trial.trial_number() is not None:  # a trial of runner's Optuna sweep
        tags[names.TRIAL] = str(trial.trial_number())
        tags[names.STUDY] = trial.study_name()
    return tags


def _start_or_reattach(client, cfg: DictConfig, where, output_dir: Path, resumed: bool,
                       tags: dict[str, str]) -> str:
    """The run id: the resumed run's own, or a new run (a child when in a sweep)."""
    previous = read_run_file(output_dir).get("mlflow_run_id") if resumed else None
    if previous and not run_exists(client, previous):
        log.warning("the resumed run's MLflow run %s is not in this store (%s); recording the "
                    "rest of the run as a new MLflow run", previous, tracking_uri(cfg))
        previous = None
    if previous:
        client.update_run(previous, status="RUNNING")
        for key in (names.PID, names.HOST):
            client.set_tag(previous, key, tags[key])
        client.set_tag(previous, names.RESUMED, "true")
        # The run goes on: an error tag would contradict the status it ends with
        # (error/traceback.txt still records the interruption).
        stale = client.get_run(previous).data.tags.keys() & set(STALE_ON_RESUME)
        for key in stale:
            client.delete_tag(previous, key)
        log.info("resuming MLflow run %s", previous)
        return previous
    tags = {**tags, **sweep_tags(where)}
    exp_id = experiment_id(client, cfg.logger.experiment, tracking_uri(cfg))
    mark_orphaned_runs(client, exp_id)
    name = cfg.logger.get("run_name") or where.name
    tags[names.NAME] = name[:5000]
    short = name if len(name) <= MAX_RUN_NAME else name[:MAX_RUN_NAME - 1] + "…"
    run = client.create_run(exp_id, run_name=short, tags=tags)
    return run.info.run_id


@contextmanager
def start(cfg: DictConfig, where, output_dir: Path, resumed: bool) -> Iterator[Any]:
    """Open (or reattach) the run; on exit set FINISHED, FAILED or KILLED truthfully."""
    from accelerate import PartialState

    if cfg.logger.name == "none" or not PartialState().is_main_process:
        yield NullTracker()
        return
    from runner.config.defaults import objective

    uri = tracking_uri(cfg)
    client = client_for(uri)
    run_id = _start_or_reattach(client, cfg, where, output_dir, resumed,
                                _tags(cfg, where, objective(cfg)))
    write_run_file(output_dir, mlflow_run_id=run_id, tracking_uri=uri)
    in_sweep = names.PARENT_RUN_ID in client.get_run(run_id).data.tags
    tracker = MlflowTracker(client, run_id, uri, cfg, in_sweep)
    try:
        if resumed:  # what the interrupted attempt could not send goes first
            tracker.outbox.load(output_dir)
        tracker.log_config(cfg)
        if not resumed:
            overrides = "\n".join(where.overrides) + ("\n" if where.overrides else "")
            tracker._log_text(overrides, "config/overrides.txt")
        with system_metrics(run_id, uri, resumed, lambda: tracker.outbox.down):
            yield tracker
    except BaseException as err:
        tracker.outbox.keep(output_dir)
        if isinstance(err, Pruned):
            _recorded(tracker, _record_pruned, err)
            raise
        killed = isinstance(err, (KeyboardInterrupt, Interrupted))
        _recorded(tracker, _record_failure, err, killed)
        raise
    _finished(tracker, output_dir)


def _finished(tracker: MlflowTracker, output_dir: Path) -> None:
    """Send what is pending and mark the run FINISHED; with the server still away, keep
    the unsent values in the run directory and say what was and was not recorded."""
    run_id, uri = tracker.run_id, tracker.uri
    if tracker.outbox.send(now=True):
        try:
            tracker.client.set_terminated(run_id, status="FINISHED")
            log.info("MLflow run %s FINISHED (%s)", run_id, uri)
            return
        except Exception as err:
            if not unreachable(err):
                raise
    unsent = tracker.outbox.keep_unsent(output_dir)
    missed = f"The {len(tracker.outbox.metrics)} metric values it did not receive"
    if unsent:
        kept = f"{missed} are in {unsent}"
    elif tracker.outbox.pending:
        kept = f"{missed} are lost (the run directory's disk refused them)"
    else:
        kept = "Every metric value was sent before it went away"
    model = tracker.model_dir or output_dir
    raise TrackingError(
        f"training finished and the model is saved in {model}, but the MLflow server {uri} "
        f"did not answer: the final status and metrics of MLflow run {run_id} could not be "
        f"recorded (it still shows RUNNING). {kept}.\n     fix: start the server again, "
        f"then run the same command with trainer.resume=auto to send them (the run "
        f"directory is {output_dir})")


def _recorded(tracker: MlflowTracker, record, err: BaseException, *args) -> None:
    """Record how the run ended; a server that is gone costs a line, never a second
    error over the run's own."""
    lost = "the server is away" if tracker.outbox.down else None
    if lost is None:
        try:
            record(tracker.client, tracker.run_id, err, *args)
        except Exception as failed:  # noqa: BLE001
            lost = f"{type(failed).__name__}: {' '.join(str(failed).split())[:300]}"
    if lost:
        log.error("MLflow run %s: how it ended (%s: %s) could not be recorded (%s)",
                  tracker.run_id, type(err).__name__, err, lost)


def _record_pruned(client, run_id: str, err: Pruned) -> None:
    """Pruning is the sweep's decision, not a failure: KILLED, tagged with the step."""
    try:
        client.set_tag(run_id, names.PRUNED, "true")
        client.set_tag(run_id, names.PRUNED_STEP, str(err.step))
    finally:
        client.set_terminated(run_id, status="KILLED")
    log.info("MLflow run %s KILLED: %s", run_id, err)


def _record_failure(client, run_id: str, err: BaseException, killed: bool) -> None:
    status = "KILLED" if killed else "FAILED"
    try:
        if isinstance(err, Preempted):  # to be resumed by the requeued job
            client.set_tag(run_id, names.PREEMPTED, "true")
        client.set_tag(run_id, names.ERROR, f"{type(err).__name__}: {err}"[:5000])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "traceback.txt"
            path.write_text("".join(traceback.format_exception(err)))
            client.log_artifact(run_id, str(path), artifact_path="error")
    finally:
        client.set_terminated(run_id, status=status)
    log.error("MLflow run %s marked %s: %s", run_id, status, err)

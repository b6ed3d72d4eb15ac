"""One experiment, top to bottom: the story every run tells.

config -> validate -> data -> tokenizer -> model -> freeze plan -> features -> train
-> save -> tracking sees all of it -> the objective goes back to the sweeper.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from runner.config.defaults import fill_defaults, objective
from runner.config.validate import validate

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> float | None:
    validate(cfg)  # every config problem at once, before anything heavy is imported
    fill_defaults(cfg)
    from runner.train import signals

    # One signal watch from here to the final save: whatever the run is doing, SIGINT /
    # SIGTERM end it with run.json and MLflow saying so (a checkpoint first when training).
    with signals.watching():
        return _run(cfg, signals.phase)


def _run(cfg: DictConfig, phase) -> float | None:
    from runner import distributed
    from runner.config.families import family_of, head_spec
    from runner.config.naming import hyperparameters, locate
    from runner.data.labels import record_in_config
    from runner.data.load import load_data
    from runner.data.tokenizer import config_values, load_tokenizer
    from runner.model.adapters import add_adapters
    from runner.model.build import build_config, build_model, resolve_checkpoint, seed_everything
    from runner.model.freeze import apply_plan
    from runner.model.report import show_plan
    from runner.model.stages import plan_stages, stage_at
    from runner.tasks import task_for
    from runner.track import tracker as tracking
    from runner.train.checkpoints import saved_epoch
    from runner.train.final_model import save_final_model
    from runner.train.loop import Trainer
    from runner.train.resume import resolve_resume
    from runner.train.run_file import (
        recorded_status,
        sweep_leftovers,
        write_run_config,
        write_run_file,
    )
    from runner.train.setup import build_training
    from runner.train.trial import result as trial_result

    # The checkpoint is vetted once (readable, right family, no custom code, reachable)
    # before anything is recorded or read; the model is built from this result.
    checkpoint = resolve_checkpoint(cfg, need_weights=cfg.model.init == "pretrained")
    state = distributed.init_process_group(cfg.trainer.cpu)
    distributed.warn_if_launched_alone()
    where = locate(cfg)
    hyperparameters = hyperparameters(cfg)
    resume_dir = resolve_resume(cfg.trainer.resume, where.name, hyperparameters,
                                where.output_dir, where.search_roots)
    output_dir = resume_dir or where.output_dir
    if state.is_main_process:
        sweep_leftovers(output_dir)  # a killed run's staging never lingers or trips this one
    with (recorded_status(output_dir, state.is_main_process, name=where.name,
                          hyperparameters=hyperparameters),
          tracking.start(cfg, where, output_dir, resumed=resume_dir is not None) as tracker):
        seed_everything(cfg.trainer.seed)
        with state.main_process_first():  # rank 0 fills the on-disk caches, the rest read
            phase("while loading the data")
            raw = load_data(cfg)
            tracker.log_datasets(raw, cfg.data)
            record_in_config(cfg, raw.labels)
            phase("while preparing the tokenizer")
            tokenizer = load_tokenizer(cfg, raw)
        phase("while building the model")
        config = build_config(cfg, raw.labels, config_values(cfg, tokenizer), checkpoint)
        model = build_model(cfg, config, checkpoint)
        adapters = add_adapters(model, family_of(cfg), head_spec(cfg), cfg.freeze)
        # One plan, or one per stage (freeze=gradual); a resumed run starts in its own.
        stages = plan_stages(model, family_of(cfg), head_spec(cfg), cfg.freeze, adapters)
        plan = stage_at(stages, saved_epoch(resume_dir) if resume_dir else 0).plan
        show_plan(cfg, model, plan, stages)
        tracker.log_config(cfg, final=True)  # now with what the data decided
        tracker.log_plan(model, stages[0].plan)
        if len(stages) > 1:
            tracker.log_plan(model, stages[0].plan, folder="freeze/stages/0")
        if state.is_main_process:
            write_run_config(output_dir, cfg)
        tracker.describe(cfg, plan, raw)
        apply_plan(model, plan)

        task = task_for(cfg, tokenizer, raw.labels)
        phase("while tokenizing the data")
        with state.main_process_first():
            features = task.features(raw)
        phase("before training started")
        parts = build_training(cfg, model, task, features, plan, head_spec(cfg).body,
                               output_dir, resuming=resume_dir is not None, stages=stages)
        if cfg.trainer.auto_batch_size:  # what it chose is a hyperparameter of the run
            chosen = {"trainer.chosen_batch_size": parts.batch_size,
                      "trainer.chosen_grad_accum": parts.grad_accum}
            tracker.log_params({k: str(v) for k, v in chosen.items()}, final=True)
            if state.is_main_process:
                write_run_file(output_dir, chosen=chosen)
        trainer = Trainer(cfg.trainer, parts, task, features, tracker.log_metrics,
                          objective(cfg), on_stage=lambda stage, step: tracker.log_plan(
                              model, stage.plan, f"freeze/stages/{stage.index}", step))
        if resume_dir is not None:
            trainer.resume(resume_dir)
        result = trainer.fit()

        phase(f"while saving the final model (training was done: the last checkpoint is in "
              f"{output_dir / 'checkpoints'})")
        model_dir = save_final_model(cfg, trainer, tokenizer, output_dir, adapters)
        test = {}
        if raw.test is not None:  # scored once, by the weights the run ends with
            phase("while scoring the test split (the model is saved)")
            test = trainer.score_test(task.split_features(raw.test))
            tracker.log_metrics(test, trainer.progress.step)
        name, _ = objective(cfg)
        value = result.metrics.get(name)
        tracker.finish(result.metrics, name, value, model_dir, log_model=cfg.logger.log_model)
        if state.is_main_process:
            best = {} if result.best_step is None else {"best_step": result.best_step}
            write_run_file(output_dir, metrics={**result.metrics, **test},
                           objective={name: value}, **best)
        phase("after the run was recorded")
    print_summary({**result.metrics, **test}, name, model_dir)
    # an Optuna study over several objectives gets each (eval metrics or parameter counts)
    counts = {"params/trainable": plan.trainable, "params/total": plan.total,
              "params/trainable_fraction": plan.trainable_fraction}
    return trial_result(value, {**result.metrics, **test, **counts})


def print_summary(metrics: dict[str, float], objective_name: str, model_dir: Path | None
                  ) -> None:
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())
                      if k.startswith("eval/"))
    print(f"final metrics: {shown}")
    tested = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())
                       if k.startswith("test/"))
    if tested:
        print(f"test split: {tested}")
    value = metrics.get(objective_name)
    print(f"objective {objective_name} = {value:.4f}" if value is not None
          else f"objective {objective_name}: not measured")
    if model_dir is not None:
        print(f"model saved to {model_dir}")

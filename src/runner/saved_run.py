"""A finished run directory opened again: its config, its record and its saved model,
rebuilt with the run's own tokenizer, labels and head (for `runner.evaluate` and
`runner.predict`)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.errors import ConfigError, Problem, RunnerError

MODEL_DIR = "model"
# What a command may change on a saved run: where the data is and how it is read, never
# the preprocessing the model was trained with (data.max_length, head.pooling, ...).
DATA_KEYS = ("data.test_file", "data.format", "data.header", "data.column_names",
             "data.columns.", "data.source_lang", "data.target_lang")
OTHER_KEYS = ("trainer.eval_batch_size", "trainer.cpu", "head.n_best",
              "head.max_answer_length", "head.num_beams", "head.max_target_length")


class RunDirError(RunnerError):
    """The directory given is not a finished run that can be used."""


@dataclass
class SavedRun:
    run_dir: Path
    cfg: DictConfig  # the run's resolved config, with the command's overrides
    info: dict[str, Any]  # run.json
    model_dir: Path


def open_run(path: str, overrides: list[str] | None = None) -> SavedRun:
    from runner.config.schema import RunnerConfig
    from runner.train.run_file import CONFIG_FILE, RUN_FILE

    run_dir = Path(path).expanduser().resolve()
    fix = "give the directory `python -m runner` trained into (trainer.output_dir, or " \
        "outputs/DATE/TIME), the one holding run.json, config.yaml and model/"
    if not run_dir.is_dir():
        what = "is not a directory" if run_dir.exists() else "does not exist"
        raise RunDirError(f"{run_dir} {what}: {fix}.")
    if not (run_dir / RUN_FILE).is_file() or not (run_dir / CONFIG_FILE).is_file():
        missing = [n for n in (RUN_FILE, CONFIG_FILE) if not (run_dir / n).is_file()]
        raise RunDirError(f"{run_dir} is not a run directory (no {' or '.join(missing)}): "
                          f"{fix}.")
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
        saved = OmegaConf.load(run_dir / CONFIG_FILE)
    except (OSError, ValueError) as err:
        raise RunDirError(f"cannot read the run record in {run_dir}: {err}") from None
    model_dir = run_dir / MODEL_DIR
    if not (model_dir / "config.json").is_file():
        status = info.get("status", "unknown")
        raise RunDirError(
            f"the run in {run_dir} has no saved model ({model_dir} is missing; run status: "
            f"{status}). It was trained with trainer.save_model=false or did not finish: "
            "train it again with trainer.save_model=true (or resume it: trainer.resume=auto).")
    cfg = OmegaConf.merge(OmegaConf.structured(RunnerConfig), saved,
                          _checked_overrides(overrides or []))
    return SavedRun(run_dir, cfg, info, model_dir)


def _checked_overrides(overrides: list[str]) -> DictConfig:
    problems = []
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep:
            problems.append(Problem(item, "is not an override (KEY=VALUE)",
                                    "write it as e.g. data.test_file=test.jsonl"))
        elif not (key.startswith(DATA_KEYS) or key in OTHER_KEYS):
            problems.append(Problem(
                key, "cannot change on a trained run: the model was trained with the "
                "run's own preprocessing", "override only " + ", ".join(
                    f"{k}*" if k.endswith(".") else k for k in (*DATA_KEYS, *OTHER_KEYS))))
    if problems:
        raise ConfigError(problems)
    return OmegaConf.from_dotlist(overrides)


def saved_labels(cfg: DictConfig):
    """The labels the model was trained on, as the run recorded them."""
    from runner.config.tasks import TASKS
    from runner.data.labels import Labels

    if not TASKS[cfg.head.task].labels:
        return None
    if cfg.head.regression:
        return Labels(["score"], regression=True)
    return Labels(list(cfg.head.label_names))


def load_model(run: SavedRun):
    """(task, model on its device, device): the saved model behind the run's own head,
    tokenizer and labels, built by runner's own model code from the run directory."""
    import torch

    from runner.data.tokenizer import config_values, load_tokenizer
    from runner.model.build import build_config, build_model, resolve_checkpoint
    from runner.tasks import task_for

    cfg = copy.deepcopy(run.cfg)
    # The saved config.json already holds every override and the data's sizes.
    cfg.model.checkpoint, cfg.model.init = str(run.model_dir), "pretrained"
    cfg.model.config_overrides = {}
    labels = saved_labels(cfg)
    checkpoint = resolve_checkpoint(cfg, need_weights=True)
    tokenizer = load_tokenizer(cfg, None)
    model = build_model(cfg, build_config(cfg, labels, config_values(cfg, tokenizer),
                                          checkpoint), checkpoint)
    cuda = torch.cuda.is_available() and not cfg.trainer.cpu
    device = torch.device("cuda" if cuda else "cpu")
    return task_for(cfg, tokenizer, labels), model.to(device).eval(), device

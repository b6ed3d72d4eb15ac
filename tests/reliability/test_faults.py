"""Faults during training: NaN losses, write errors while saving (interruptions and crashes
mid-save are in tests/test_training.py and tests/test_tracking.py).

Each run happens in this process as `python -m runner` runs it after start-up: composed,
then `run(cfg)` inside the CLI's error handler, from the test's directory (so the MLflow
store is ./mlflow.db there); the real command line is tested in test_bad_input.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from dataclasses import dataclass

from conftest import compose, fast, mlflow_runs
from runner.cli import report_errors


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def run(workdir, *overrides) -> Done:
    """`python -m runner overrides` from workdir, in this process: its exit code and output
    (runner's log lines included in stdout, where the console shows them)."""
    from runner.run import run as run_experiment

    overrides = list(overrides)
    if not any(o.startswith("trainer.output_dir=") for o in overrides):
        overrides.append(f"trainer.output_dir={workdir / 'outputs' / 'run'}")
    out, err = io.StringIO(), io.StringIO()
    lines = logging.StreamHandler(out)
    logging.getLogger("runner").addHandler(lines)
    before, code = os.getcwd(), 0
    os.chdir(workdir)
    try:
        with (contextlib.redirect_stdout(out), contextlib.redirect_stderr(err),
              report_errors()):
            run_experiment(compose(overrides))
    except SystemExit as exited:
        code = exited.code
    finally:
        os.chdir(before)
        logging.getLogger("runner").removeHandler(lines)
    return Done(code, out.getvalue(), err.getvalue())


def test_nan_loss_stops_the_run_failed_with_the_step(tmp_path):
    done = run(tmp_path, *fast("seqcls", "bert", "freeze=none", "trainer.lr=1e30",
                               "trainer.max_grad_norm=0", "trainer.max_epochs=3"))
    assert done.returncode == 2
    assert "the loss became nan at step" in done.stderr
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    assert record.info.status == "FAILED"
    assert "at step" in record.data.tags["runner.error"]


def test_nan_loss_can_be_skipped_and_counted(tmp_path):
    done = run(tmp_path, *fast("seqcls", "bert", "freeze=none", "trainer.lr=1e30",
                               "trainer.max_grad_norm=0", "trainer.max_epochs=2",
                               "trainer.nan_policy=skip"))
    assert done.returncode == 0, done.stderr[-3000:]
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    assert record.info.status == "FINISHED"
    assert record.data.metrics["train/skipped_steps"] > 0
    assert "non-finite loss" in done.stdout + done.stderr


def test_a_write_error_while_saving_keeps_the_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    # A file where the step-4 checkpoint goes: moving it into place fails, as on a full
    # disk. (A staging folder in the way would be swept away as the run starts.)
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "step-00000004").write_text("in the way")
    done = run(tmp_path, *fast("seqcls", "bert", "freeze=none", "trainer.save_every=2",
                               "trainer.max_epochs=2"), f"trainer.output_dir={out}")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "saving the checkpoint for step 4 failed" in done.stderr
    assert f"previous checkpoint is intact: {out / 'checkpoints' / 'step-00000002'}" in done.stderr
    assert (out / "checkpoints" / "step-00000002" / "progress.json").is_file()
    assert json.loads((out / "run.json").read_text())["status"] == "FAILED"
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    assert record.info.status == "FAILED"
    assert "saving the checkpoint" in record.data.tags["runner.error"]


def test_non_finite_regression_label_is_refused_before_training(tmp_path):
    (tmp_path / "train.tsv").write_text("text\tlabel\na\t0.5\nb\tnan\n")
    done = run(tmp_path, *fast("seqcls"), "head.regression=true", "data=local",
               f"data.train_file={tmp_path / 'train.tsv'}",
               f"data.validation_file={tmp_path / 'train.tsv'}")
    assert done.returncode == 2
    assert "row 2: label nan is not a finite number" in done.stderr

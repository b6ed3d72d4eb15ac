"""Bad input, as a user types it: each case exits non-zero with a message naming the problem
and the fix, leaves no MLflow run RUNNING, and writes nothing that trips the next run.

All cases run in one working directory with one MLflow store; a good run at the end must
then succeed there. Every case runs in this process through the CLI's own error path
(compose, `run(cfg)` inside `report_errors`), which is what `python -m runner` does after
start-up; a few cases per command also run as real commands, for the real exit code and a
stderr without a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import compose, fast, mlflow_runs
from runner.cli import report_errors

FAST = fast("seqcls", "bert", "trainer.max_epochs=1")


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-input")


@pytest.fixture(scope="module")
def files(workdir):
    good = "text\tlabel\n" + "".join(f"row {i} text\t{i % 2}\n" for i in range(20))
    tiny_ckpt = workdir / "tiny-bert"
    from transformers import BertConfig, BertForSequenceClassification

    BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=37,
                                             vocab_size=99)).save_pretrained(tiny_ckpt)
    broken_ckpt = workdir / "broken-ckpt"
    broken_ckpt.mkdir()
    write(broken_ckpt / "config.json", "{ not json")
    return {
        "good": write(workdir / "good.tsv", good),
        "out_of_range": write(workdir / "range.tsv", good + "row x\t7\n"),
        "floats": write(workdir / "floats.tsv", "text\tlabel\na\t0.25\nb\t0.75\n"),
        "three_classes": write(workdir / "three.tsv", "text\tlabel\na\tx\nb\ty\nc\tz\n"),
        "no_label": write(workdir / "nolabel.tsv", "text\tstars\na\t1\nb\t0\n"),
        "empty": write(workdir / "empty.tsv", "text\tlabel\n"),
        "bad_json": write(workdir / "bad.jsonl", '{"text": "a", "label": 0}\n{"text": oops\n'),
        "tiny_ckpt": str(tiny_ckpt),
        "broken_ckpt": str(broken_ckpt),
    }


def local(files, train: str, validation: str = "good") -> list[str]:
    return ["data=local", f"data.train_file={files[train]}",
            f"data.validation_file={files[validation]}"]


# (case, overrides, what the message must say)
CASES = [
    ("unknown option", lambda f: ["model=bogus"], "Available options in 'model'"),
    ("misspelled key", lambda f: ["trainer.learning_rate=0.1"], "trainer.learning_rate"),
    ("missing value", lambda f: ["model.checkpoint=???"],
     "model.checkpoint: is required and has no value"),
    ("wrong type", lambda f: ["trainer.batch_size=lots"], "batch_size"),
    ("unsupported pair", lambda f: ["model=distilbert", "head=causal_lm"],
     "no causal_lm model for the distilbert family"),
    ("heads not dividing", lambda f: ["model=bert", "model.init=scratch",
                                      "+model.config_overrides.num_attention_heads=7"],
     "not divisible by the number of attention heads 7"),
    ("negative size", lambda f: ["model=bert", "model.init=scratch",
                                 "+model.config_overrides.hidden_size=-8"],
     "must be a positive number"),
    ("shape change on pretrained", lambda f: ["+model.config_overrides.hidden_size=64"],
     "model.init=scratch"),
    ("pattern matching nothing", lambda f: ["freeze=custom", "freeze.trainable=[zzz_nothing]"],
     "'zzz_nothing' matches no parameter"),
    ("nothing trainable", lambda f: ["freeze=custom", "freeze.frozen=['.*']"],
     "leaves nothing to train"),
    ("freeze.n out of range", lambda f: ["freeze=bottom_n", "freeze.n=9"],
     "more than the model's 6 blocks"),
    ("label out of range", lambda f: [*FAST, *local(f, "out_of_range"), "head.num_labels=2"],
     "row 21: label 7 is outside 0..1"),
    ("float labels", lambda f: [*FAST, *local(f, "floats", "floats")], "head.regression=true"),
    ("more classes than num_labels", lambda f: [*FAST, *local(f, "three_classes",
                                                              "three_classes"),
                                                "head.num_labels=2"],
     "has 3 classes"),
    ("missing data file", lambda f: [*FAST, "data=local", "data.train_file=/no/such/file.csv"],
     "does not exist"),
    ("missing column", lambda f: [*FAST, *local(f, "no_label", "no_label")],
     "Columns found: text, stars"),
    ("empty split", lambda f: [*FAST, *local(f, "good", "empty")], "has no rows"),
    ("malformed JSON line", lambda f: [*FAST, *local(f, "bad_json", "bad_json")],
     "bad.jsonl, line 2: not valid JSON"),
    ("unreadable checkpoint", lambda f: [f"model.checkpoint={f['broken_ckpt']}"],
     "cannot read"),
    ("checkpoint of another architecture", lambda f: ["model=gpt2", "head=causal_lm",
                                                      f"model.checkpoint={f['tiny_ckpt']}"],
     "is a 'bert' model, but model.family='gpt2'"),
    ("max_length beyond positions", lambda f: ["data.max_length=4096"], "512 positions"),
]


@contextlib.contextmanager
def in_directory(path: Path):  # contextlib.chdir is Python 3.11+
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_in_process(workdir: Path, overrides: list[str], name: str) -> tuple[int, str]:
    """`python -m runner overrides` from workdir, in this process: (exit code, stderr)."""
    from runner.run import run

    out = workdir / "outputs" / "runs" / re.sub(r"\W+", "-", name)
    stderr = io.StringIO()
    with (in_directory(workdir), contextlib.redirect_stderr(stderr),
          pytest.raises(SystemExit) as exited, report_errors()):
        run(compose([*overrides, f"trainer.output_dir={out}"]))
    return exited.value.code, stderr.getvalue()


def assert_nothing_running(workdir: Path) -> None:
    _, runs = mlflow_runs(workdir / "mlflow.db")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    for run_file in workdir.glob("outputs/**/run.json"):
        assert json.loads(run_file.read_text())["status"] != "RUNNING", run_file


@pytest.mark.parametrize("case,overrides,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_and_leaves_nothing_running(workdir, files, case, overrides,
                                                            expected):
    code, stderr = run_in_process(workdir, overrides(files), case)
    assert code == 2, stderr[-2000:]
    assert expected in stderr, stderr[-3000:]
    assert "Traceback" not in stderr
    assert_nothing_running(workdir)


# Real commands: Hydra's own composition error, a validation error, a data error found after
# the MLflow run started; and one case each for runner.inspect and runner.compare.
CLI_CASES = ["unknown option", "heads not dividing", "missing column"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_input_on_the_command_line(workdir, files, case):
    _, overrides, expected = next(c for c in CASES if c[0] == case)
    done = subprocess.run([sys.executable, "-m", "runner", *overrides(files)], cwd=workdir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert expected in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert_nothing_running(workdir)


# What a library prints on its own: MLflow's log format and run links, datasets' and
# transformers' progress bars. runner's console shows none of it (src/runner/console.py).
LIBRARY_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (DEBUG|INFO) |View run|"
                          r"Saving the dataset|Loading weights|^Map", re.MULTILINE)


def test_the_console_shows_runner_lines_only(workdir, files):
    done = subprocess.run([sys.executable, "-m", "runner", *FAST, *local(files, "good"),
                           "logger.tracking_uri=sqlite:///console.db"], cwd=workdir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rows from" in done.stdout and "final metrics:" in done.stdout
    assert not LIBRARY_LINE.findall(done.stdout + done.stderr), done.stdout + done.stderr


def test_bad_input_to_inspect_on_the_command_line(workdir):
    done = subprocess.run([sys.executable, "-m", "runner.inspect", "model=distilbert",
                           "head=causal_lm"], cwd=workdir, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stdout[-2000:]
    assert "no causal_lm model for the distilbert family" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_input_to_compare_on_the_command_line(workdir):
    done = subprocess.run([sys.executable, "-m", "runner.compare", "--runs", "no-such-run"],
                          cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout[-2000:]
    assert "no-such-run" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_good_run_then_succeeds_in_the_same_place(workdir, files):
    from runner.run import run

    with in_directory(workdir):
        run(compose([*FAST, *local(files, "good"), f"trainer.output_dir={workdir / 'good'}"]))
    _, runs = mlflow_runs(workdir / "mlflow.db")
    assert [r.info.status for r in runs].count("FINISHED") == 1
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)

"""`python -m runner.compare` as a user runs it, on real MLflow stores built the way
runner.tracking and runner.sweep write them (same tags, params and metric names)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import fast, run_cli

T0 = 1_700_000_000_000  # ms; runs get explicit start times so "latest" is unambiguous
HOUR = 3_600_000
BERT_TOTAL = 109_482_240  # encoder without a classifier
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ building the stores


def client_for(directory: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{directory / 'mlflow.db'}")


def experiment(client, name: str) -> str:
    return client.create_experiment(name)


def sweep_parent(client, exp_id: str, swept: list[str], start: int,
                 objective: tuple[str, str] = ("eval/accuracy", "max")) -> str:
    """As runner.sweep._open_parent opens it."""
    overrides = " ".join(f"{k}=a,b" for k in swept)
    run = client.create_run(exp_id, run_name=f"sweep: {overrides}", start_time=start, tags={
        "runner.sweep_parent": "true", "runner.objective": objective[0],
        "runner.objective_mode": objective[1], "runner.swept": ",".join(swept),
        "runner.command": f"__main__.py -m {overrides}", "runner.sweep_dir": "/tmp/sweep"})
    client.log_param(run.info.run_id, "sweep.overrides", overrides)
    return run.info.run_id


def job_run(client, exp_id: str, *, name: str, start: int, seconds: float | None,
            status: str = "FINISHED", parent: str | None = None,
            swept: dict[str, str] | None = None, params: dict[str, str] | None = None,
            trainable: int = 1_538, total: int | None = None, evals: dict[str, float] | None = None,
            objective: tuple[str, str] = ("eval/accuracy", "max")) -> str:
    """A run as runner.tracking records it; seconds=None leaves it RUNNING."""
    from mlflow.entities import Metric, Param

    tags = {"runner.family": "bert", "runner.head": "seqcls", "runner.freeze": "head_only",
            "runner.objective": objective[0], "runner.objective_mode": objective[1]}
    if parent:
        tags["mlflow.parentRunId"] = parent
    tags.update({f"runner.swept.{k}": v for k, v in (swept or {}).items()})
    run_id = client.create_run(exp_id, run_name=name, start_time=start, tags=tags).info.run_id
    all_params = {"model.family": "bert", "head.task": "seqcls", "trainer.seed": "0",
                  "logger.experiment": "runner", **(params or {})}
    total = total or BERT_TOTAL + trainable
    metrics = {"params/total": total, "params/trainable": trainable,
               "params/frozen": total - trainable, "params/trainable_fraction": trainable / total}
    client.log_batch(run_id, params=[Param(k, v) for k, v in all_params.items()],
                     metrics=[Metric(k, v, start, 0) for k, v in metrics.items()])
    if evals:
        client.log_batch(run_id, metrics=[Metric(k, v, start, 12) for k, v in evals.items()])
        if objective[0] in evals:
            client.log_metric(run_id, "objective", evals[objective[0]], step=0)
    if status == "FAILED":
        client.set_tag(run_id, "runner.error", "TrainingError: loss is nan")
    if seconds is not None:
        client.set_terminated(run_id, status=status, end_time=start + int(seconds * 1000))
    return run_id


def accuracy(value: float) -> dict[str, float]:
    return {"eval/accuracy": value, "eval/f1_macro": value - 0.1, "eval/loss": 1 - value}


@dataclass
class Store:
    dir: Path
    uri: str
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """Experiments: runner (an older and a newer sweep), minimize (a two-key sweep on a loss),
    plain (runs outside any sweep), hollow (a sweep whose jobs never started)."""
    directory = tmp_path_factory.mktemp("store")
    client = client_for(directory)
    s = Store(directory, f"sqlite:///{directory / 'mlflow.db'}")

    exp = experiment(client, "runner")
    old = s.ids["old_sweep"] = sweep_parent(client, exp, ["trainer.lr"], T0)
    for i, (lr, acc) in enumerate([("1e-05", 0.55), ("0.0001", 0.70), ("0.001", 0.65)]):
        s.ids[f"lr={lr}"] = job_run(client, exp, name=f"bert-seqcls-head_only[trainer.lr={lr}]",
                                    start=T0 + i * 1000, seconds=30, parent=old,
                                    swept={"trainer.lr": lr}, evals=accuracy(acc))
    new = s.ids["new_sweep"] = sweep_parent(client, exp, ["head.num_labels"], T0 + HOUR)
    jobs = [("2", 1_538, 0.60, 75.5, "FINISHED"), ("3", 2_307, 0.80, 3725, "FINISHED"),
            ("4", 3_076, None, 2, "FAILED"), ("5", 3_845, 0.70, None, "RUNNING")]
    for i, (labels, trainable, acc, seconds, status) in enumerate(jobs):
        s.ids[f"labels={labels}"] = job_run(
            client, exp, name=f"bert-seqcls-head_only[head.num_labels={labels}]",
            start=T0 + HOUR + i * 1000, seconds=seconds, status=status, parent=new,
            swept={"head.num_labels": labels}, trainable=trainable,
            evals=accuracy(acc) if acc else None)

    exp = experiment(client, "minimize")
    loss = ("eval/loss", "min")
    parent = s.ids["min_sweep"] = sweep_parent(client, exp, ["trainer.lr", "freeze"], T0,
                                               objective=loss)
    for i, (lr, freeze, value) in enumerate([("1e-4", "head_only", 0.9), ("1e-4", "bitfit", 0.4),
                                             ("1e-3", "head_only", 0.7), ("1e-3", "bitfit", 1.2)]):
        s.ids[f"{lr},{freeze}"] = job_run(
            client, exp, name=f"job{i}", start=T0 + i * 1000, seconds=10, parent=parent,
            swept={"trainer.lr": lr, "freeze": freeze}, objective=loss,
            evals={"eval/loss": value, "eval/perplexity": 2.718 ** value})

    exp = experiment(client, "plain")
    for i, (freeze, lr, acc) in enumerate([("head_only", "0.001", 0.5), ("full", "2e-05", 0.9),
                                           ("bitfit", "0.0005", 0.7)]):
        s.ids[f"plain={freeze}"] = job_run(
            client, exp, name=f"bert-seqcls-{freeze}", start=T0 + i * 1000, seconds=20,
            params={"freeze.strategy": freeze, "trainer.lr": lr,
                     "data.train_file": f"/very/long/path/to/the/training/data/{i}.csv",
                     "trainer.output_dir": f"/out/{i}"},
            trainable=[1_538, 109_483_778, 104_450][i], total=109_483_778,
            evals=accuracy(acc))

    exp = experiment(client, "hollow")
    s.ids["hollow_sweep"] = sweep_parent(client, exp, ["trainer.lr"], T0)
    return s


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Store:
    """A store that exists (tables created) but holds no runs."""
    directory = tmp_path_factory.mktemp("empty")
    client_for(directory).search_experiments()  # creates and migrates the database
    return Store(directory, f"sqlite:///{directory / 'mlflow.db'}")


# --------------------------------------------------------------------------- helpers


def compare(*args: str, cwd: Path, env: dict | None = None):
    return run_cli(*args, cwd=cwd, env=env, module="runner.compare", timeout=120)


def compare_json(*args: str, cwd: Path) -> dict:
    result = compare(*args, "--format", "json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def table_lines(stdout: str) -> list[str]:
    """The table: from its header line (starting with '#') to the blank line after it."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#"))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def cell(header: str, row: str, column: str) -> str:
    """The value under a right-aligned column (numbers end where their header ends)."""
    return row[:header.index(column) + len(column)].split()[-1]


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 10_000  # two drawn panels, not an empty canvas
    height, width, _ = matplotlib.image.imread(str(path)).shape
    assert width > 1000 and height > 400


# ----------------------------------------------------------------------------- sweeps


def test_latest_sweep_by_default_best_first_failed_last(store):
    result = compare(cwd=store.dir)  # the default store: ./mlflow.db
    assert result.returncode == 0, result.stderr
    header, *rows = table_lines(result.stdout)
    for column in ("run", "head.num_labels", "trainable", "trainable %", "eval/accuracy",
                   "eval/f1_macro", "eval/loss", "status", "duration"):
        assert column in header
    assert "trainer.lr" not in header  # the older sweep's key
    labels = [row.split("[head.num_labels=")[1][0] for row in rows]
    assert labels == ["3", "5", "2", "4"]  # 0.8, 0.7 (still running), 0.6, failed
    assert "FAILED" in rows[-1] and "running" in rows[1] and "RUNNING" in rows[1]
    assert "2,307" in rows[0] and "0.8" in rows[0] and "1h02m" in rows[0]
    assert "1m16s" in rows[2] and "1,538" in rows[2]
    assert f"{100 * 2_307 / (BERT_TOTAL + 2_307):.4g}%" in rows[0]
    assert f"sweep {store.ids['new_sweep']}" in result.stdout
    assert "eval/accuracy (max), best first" in result.stdout
    plot = store.dir / f"compare-{store.ids['new_sweep']}.png"
    assert f"plot: {plot}" in result.stdout
    assert_png(plot)


def test_sweep_latest_picks_the_newest_of_two_sweeps(store, tmp_path):
    doc = compare_json("--tracking-uri", store.uri, "--sweep", "latest",
                       "--output", str(tmp_path / "latest.png"), cwd=tmp_path)
    assert doc["sweep"] == store.ids["new_sweep"]
    assert doc["objective"] == {"name": "eval/accuracy", "mode": "max"}
    assert doc["keys"] == ["head.num_labels"]
    runs = doc["runs"]
    assert [r["run_id"] for r in runs] == [store.ids[f"labels={n}"] for n in "3524"]
    assert [r["values"]["head.num_labels"] for r in runs] == ["3", "5", "2", "4"]
    assert [r["objective"] for r in runs] == [0.8, 0.7, 0.6, None]
    assert [r["status"] for r in runs] == ["FINISHED", "RUNNING", "FINISHED", "FAILED"]
    assert runs[0]["trainable"] == 2_307 and runs[0]["total"] == BERT_TOTAL + 2_307
    assert runs[0]["eval"]["eval/f1_macro"] == pytest.approx(0.7)
    assert runs[0]["duration_s"] == 3725 and runs[1]["duration_s"] is None
    assert runs[3]["eval"] == {}
    assert doc["plot"] == str(tmp_path / "latest.png")
    assert_png(tmp_path / "latest.png")


def test_sweep_by_parent_id_and_png_in_a_new_folder(store, tmp_path):
    output = tmp_path / "plots" / "lr.png"
    doc = compare_json("--tracking-uri", store.uri, "--sweep", store.ids["old_sweep"],
                       "--output", str(output), cwd=tmp_path)
    assert doc["sweep"] == store.ids["old_sweep"] and doc["experiment"] == "runner"
    assert [r["values"]["trainer.lr"] for r in doc["runs"]] == ["0.0001", "0.001", "1e-05"]
    assert [r["objective"] for r in doc["runs"]] == [0.70, 0.65, 0.55]
    assert_png(output)


def test_min_objective_sorts_lowest_first_with_a_column_per_swept_key(store, tmp_path):
    result = compare("--experiment", "minimize", "--output", str(tmp_path / "min.png"),
                     cwd=store.dir)
    assert result.returncode == 0, result.stderr
    header, *rows = table_lines(result.stdout)
    assert "trainer.lr" in header and "freeze" in header and "eval/perplexity" in header
    assert "eval/loss (min), best first" in result.stdout
    assert [float(cell(header, row, "eval/loss")) for row in rows] == [0.4, 0.7, 0.9, 1.2]
    assert rows[0].split()[1:4] == ["job1", "1e-4", "bitfit"]
    assert [cell(header, row, "eval/perplexity") for row in rows] == ["1.492", "2.014",
                                                                     "2.459", "3.32"]
    assert_png(tmp_path / "min.png")


# ------------------------------------------------------------------------- plain runs


def test_runs_compares_plain_runs_by_the_params_that_differ(store, tmp_path):
    ids = [store.ids[f"plain={f}"] for f in ("head_only", "full", "bitfit")]
    result = compare("--tracking-uri", store.uri, "--runs", *ids,
                     "--output", str(tmp_path / "runs.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = table_lines(result.stdout)
    assert "freeze.strategy" in header and "trainer.lr" in header
    assert "model.family" not in header  # the same in every run
    assert "data.train_file" not in header and "output_dir" not in header  # long / not a choice
    assert [row.split()[1] for row in rows] == ["bert-seqcls-full", "bert-seqcls-bitfit",
                                                "bert-seqcls-head_only"]
    assert "109,483,778" in rows[0] and "104,450" in rows[1]
    assert "3 runs in plain" in result.stdout  # the runs' experiment, not the default one
    assert "(also differing: data.train_file" not in result.stdout  # long ones are not listed
    assert_png(tmp_path / "runs.png")


def test_without_a_sweep_compares_the_recent_runs(store, tmp_path):
    doc = compare_json("--tracking-uri", store.uri, "--experiment", "plain",
                       "--output", str(tmp_path / "plain.png"), cwd=tmp_path)
    assert doc["sweep"] is None and doc["keys_source"] == "params"
    assert doc["keys"][:2] == ["freeze.strategy", "trainer.lr"]
    assert [r["values"]["freeze.strategy"] for r in doc["runs"]] == ["full", "bitfit",
                                                                      "head_only"]


def test_csv_with_the_store_from_the_environment(store, tmp_path):
    result = compare("--format", "csv", "--output", str(tmp_path / "c.png"), cwd=tmp_path,
                     env={"MLFLOW_TRACKING_URI": store.uri})
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["head.num_labels"] for r in rows] == ["3", "5", "2", "4"]
    assert float(rows[0]["eval/accuracy"]) == 0.8 and rows[3]["eval/accuracy"] == ""
    assert int(float(rows[0]["params/trainable"])) == 2_307
    assert rows[3]["status"] == "FAILED"
    assert f"plot: {tmp_path / 'c.png'}" in result.stderr  # stdout stays plain CSV
    assert not (tmp_path / "mlflow.db").exists()


# ----------------------------------------------------------------------------- errors


ERRORS = {
    "no store": ([], ["no MLflow store at", "mlflow.db", "--tracking-uri",
                      "run from the directory that holds mlflow.db"]),
    "unknown experiment": (["--experiment", "nope"],
                           ["no experiment named 'nope'", "hollow, minimize, plain, runner"]),
    "no sweep": (["--experiment", "plain", "--sweep", "latest"],
                 ["no sweep in experiment 'plain'", "--runs"]),
    "unknown run": (["--runs", "{labels=2}", "0123abcd"], ["no run with id 0123abcd"]),
    "unknown sweep": (["--sweep", "0123abcd"], ["no run with id '0123abcd'"]),
    "child as sweep": (["--sweep", "{labels=2}"],
                       ["is not a sweep parent", "use --sweep {new_sweep}"]),
    "sweep without jobs": (["--experiment", "hollow"], ["{hollow_sweep}", "has no child runs"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_exit_2_and_say_what_to_do(case, store, tmp_path):
    args, expected = ERRORS[case]
    args = [a.format(**store.ids) for a in args]
    if case != "no store":
        args = ["--tracking-uri", store.uri, *args]
    result = compare(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for text in expected:
        assert text.format(**store.ids) in result.stderr
    assert not (tmp_path / "mlflow.db").exists()  # looking never creates a store
    assert not list(tmp_path.glob("*.png"))


def test_empty_store_says_so(empty_store, tmp_path):
    result = compare(cwd=empty_store.dir)
    assert result.returncode == 2
    assert f"the MLflow store at {empty_store.uri} is empty" in result.stderr
    assert "--tracking-uri" in result.stderr and "Traceback" not in result.stderr


def test_a_file_that_is_no_store_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "mlflow.db").write_text("notes, not a database\n" * 20)
    result = compare(cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot read the MLflow store at sqlite:///" in result.stderr
    assert "file is not a database" in result.stderr


# ----------------------------------------------------------------------- the command


def test_help_is_fast_and_imports_no_ml_stack(tmp_path):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "runner.compare",
                             "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "--sweep" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    heavy = {m for m in imported if m.split(".")[0] in ("torch", "transformers", "mlflow",
                                                         "matplotlib", "hydra")}
    assert not heavy


def test_number_formats_and_short_run_names():
    from runner.track.compare_format import fmt_count, fmt_duration, fmt_fraction, fmt_metric
    from runner.track.compare_rows import distinct_names
    from runner.track.compare_select import Row

    assert fmt_count(109_484_547.0) == "109,484,547" and fmt_count(None) == "-"
    assert fmt_metric(0.123456) == "0.1235" and fmt_metric(float("nan")) == "-"
    assert fmt_fraction(0.0002107) == "0.02107%"

    def row(seconds: float | None, status: str = "FINISHED") -> Row:
        end = None if seconds is None else 1_000 + int(seconds * 1000)
        return Row("id", "name", status, 1_000, end, {}, {}, None)

    assert [fmt_duration(row(s)) for s in (12.34, 125, 7_322)] == ["12.3s", "2m05s", "2h02m"]
    assert fmt_duration(row(None, "RUNNING")) == "running"
    names = ["bert-seqcls-head_only[data.x=1,head.num_labels=2,trainer.lr=0.1]",
             "bert-seqcls-head_only[data.x=1,head.num_labels=3,trainer.lr=0.1]"]
    assert distinct_names(names) == ["bert-seqcls-head_only[head.num_labels=2]",
                                     "bert-seqcls-head_only[head.num_labels=3]"]
    assert distinct_names(["a[x=1]", "b[x=1]"]) == ["a", "b"]
    assert distinct_names(["plain", "a[x=1]"]) == ["plain", "a[x=1]"]


# ------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_a_real_sweep_then_compare(tmp_path):
    sweep = run_cli("-m", "head.num_labels=2,3", *fast("seqcls"), cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert "runner.compare --sweep latest" in sweep.stdout
    result = compare("--sweep", "latest", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = table_lines(result.stdout)
    assert "head.num_labels" in header and "eval/accuracy" in header
    assert len(rows) == 2 and all("FINISHED" in row for row in rows)
    # the jobs' names carry every override; the table keeps only the swept one
    assert sorted(row.split()[1] for row in rows) == [
        "bert-seqcls-head_only[head.num_labels=2]", "bert-seqcls-head_only[head.num_labels=3]"]
    doc = compare_json("--sweep", "latest", cwd=tmp_path)
    assert sorted(r["values"]["head.num_labels"] for r in doc["runs"]) == ["2", "3"]
    assert all(r["trainable"] and r["objective"] is not None for r in doc["runs"])
    objectives = [r["objective"] for r in doc["runs"]]
    assert objectives == sorted(objectives, reverse=True)
    assert_png(Path(doc["plot"]))
    assert Path(doc["plot"]).parent == tmp_path

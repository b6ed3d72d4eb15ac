"""Honest comparisons across objectives (issue 13, parts 1-3): a sweep over heads keeps one
best per objective, runner.compare groups runs by objective and over seeds, every fraction
is on 0-1, and a regression head is judged by Pearson without being told.

Runs are real `python -m runner` processes on real MLflow stores; compare's grouping is
checked on stores written the way runner.tracking writes them (tests/test_compare.py),
through compare's own entry function in this process (one mlflow import for them all)."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest
from test_compare import T0, client_for, experiment, job_run, sweep_parent

from conftest import fast, mlflow_runs, run_cli

FRACTIONS = {"accuracy", "f1_macro", "f1", "exact_match", "precision", "recall"}


def fast_without_head() -> list[str]:
    return [a for a in fast("seqcls") if not a.startswith("head=")]


def compare(*args: str, cwd: Path):
    return run_cli(*args, cwd=cwd, module="runner.compare", timeout=120)


def compared(directory: Path, *args: str, plot: Path) -> str:
    """What `python -m runner.compare ARGS` prints, from its entry function."""
    from runner.track.compare import compare as run_compare
    from runner.track.compare import parser

    out, _ = run_compare(parser().parse_args(
        ["--tracking-uri", f"sqlite:///{directory / 'mlflow.db'}", "--output", str(plot),
         *args]))
    return out


# ----------------------------------------------------------- a real sweep over heads


@pytest.fixture(scope="module")
def heads_sweep(tmp_path_factory):
    work = tmp_path_factory.mktemp("heads-sweep")
    result = run_cli("-m", "head=seqcls,qa", "trainer.max_steps=5", *fast_without_head(),
                     cwd=work)
    assert result.returncode == 0, result.stderr[-5000:]
    client, runs = mlflow_runs(work / "mlflow.db")
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep_parent") == "true"]
    children = {r.data.tags["runner.head"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return work, result, parent, children


def test_sweep_over_heads_keeps_one_best_per_objective(heads_sweep):
    _, result, parent, children = heads_sweep
    assert set(children) == {"seqcls", "qa"}
    seqcls, qa = children["seqcls"], children["qa"]
    assert seqcls.data.tags["runner.objective"] == "eval/accuracy"
    assert qa.data.tags["runner.objective"] == "eval/f1"
    metrics, tags = parent.data.metrics, parent.data.tags
    assert metrics["best/eval/accuracy"] == seqcls.data.metrics["eval/accuracy"]
    assert metrics["best/eval/f1"] == qa.data.metrics["eval/f1"]
    assert tags["runner.best_child.eval/accuracy"] == seqcls.info.run_id
    assert tags["runner.best_child.eval/f1"] == qa.info.run_id
    # no single "best" across an accuracy and an F1
    assert "best/objective" not in metrics and "runner.best_child_run_id" not in tags
    assert tags["runner.objective"] == "eval/accuracy,eval/f1"
    summary = result.stdout[result.stdout.index("sweep: 2 jobs"):]
    accuracy = seqcls.data.metrics["eval/accuracy"]
    assert f"best eval/accuracy (max): job #0 (head=seqcls) = {accuracy:.4f}" in summary
    assert f"best eval/f1 (max): job #1 (head=qa) = {qa.data.metrics['eval/f1']:.4f}" in summary


def test_every_fraction_a_child_reports_is_on_0_1(heads_sweep):
    _, _, _, children = heads_sweep
    reported = {}
    for child in children.values():
        for key, value in child.data.metrics.items():
            if key.startswith("eval/") and key.removeprefix("eval/") in FRACTIONS:
                reported[key] = value
                assert 0 <= value <= 1, (key, value)
    assert {"eval/accuracy", "eval/f1_macro", "eval/exact_match", "eval/f1"} <= set(reported)


def test_compare_on_the_heads_sweep_has_a_table_per_objective(heads_sweep):
    work, _, _, children = heads_sweep
    result = compare("--sweep", "latest", cwd=work)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    first, second = out.index("objective: eval/accuracy (max)"), out.index("objective: eval/f1")
    assert first < second
    accuracy_table, f1_table = out[first:second], out[second:]
    assert "seqcls" in accuracy_table and "bert-qa" not in accuracy_table
    assert "bert-qa" in f1_table and "seqcls" not in f1_table
    assert "eval/exact_match" in f1_table and "eval/exact_match" not in accuracy_table


# ------------------------------------------------------------ the best per objective


def test_best_per_objective_follows_each_objectives_direction():
    from omegaconf import OmegaConf

    from runner.track.sweep import best_per_objective

    def job(num, value, name, mode, status="FINISHED", head="seqcls"):
        return {"num": num, "status": status, "objective": value, "objective_name": name,
                "objective_mode": mode, "overrides": [f"job={num}"], "output_dir": ".",
                "head": head}

    jobs = [job(0, 0.6, "eval/accuracy", "max"), job(1, 9.0, "eval/perplexity", "min"),
            job(2, 0.8, "eval/accuracy", "max"), job(3, 4.0, "eval/perplexity", "min"),
            job(4, 0.9, "eval/accuracy", "max", "FAILED"), job(5, math.nan, "eval/f1", "max")]
    config = OmegaConf.create({"head": {"task": "seqcls", "regression": False},
                               "trainer": {"objective": None, "objective_mode": None}})
    best = best_per_objective(config, jobs)
    assert list(best) == ["eval/accuracy", "eval/perplexity"]  # NaN and failures: no best
    assert best["eval/accuracy"]["num"] == 2 and best["eval/perplexity"]["num"] == 3
    # entity F1 (tokencls) and answer F1 (qa) share a name, not a meaning: a best each
    shared = [job(0, 0.9, "eval/f1", "max", head="tokencls"), job(1, 0.2, "eval/f1", "max",
              head="qa"), job(2, 0.4, "eval/f1", "max", head="qa")]
    best = best_per_objective(config, shared)
    assert {k: j["num"] for k, j in best.items()} == {"tokencls/eval/f1": 0, "qa/eval/f1": 2}


# -------------------------------------------------------- compare: groups, seeds, keys


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    """A sweep over heads x seeds: seqcls (accuracy) and qa (F1), three seeds each, plus
    plain runs that differ in freeze strategy and a long data path."""
    directory = tmp_path_factory.mktemp("mixed")
    client = client_for(directory)
    exp = experiment(client, "runner")
    parent = sweep_parent(client, exp, ["head", "trainer.seed"], T0)
    values = {("seqcls", "0"): 0.70, ("seqcls", "1"): 0.74, ("seqcls", "2"): 0.78,
              ("qa", "0"): 0.30, ("qa", "1"): 0.50, ("qa", "2"): 0.40}
    for i, ((head, seed), value) in enumerate(values.items()):
        objective = ("eval/accuracy", "max") if head == "seqcls" else ("eval/f1", "max")
        evals = ({"eval/accuracy": value, "eval/loss": 1 - value} if head == "seqcls"
                 else {"eval/f1": value, "eval/exact_match": value / 2})
        job_run(client, exp, name=f"bert-{head}-head_only[head={head},trainer.seed={seed}]",
                start=T0 + i * 1000, seconds=10 + i, parent=parent,
                swept={"head": head, "trainer.seed": seed}, objective=objective, evals=evals,
                params={"head.task": head, "trainer.seed": seed, "data.max_length": "64"})
    shared = experiment(client, "shared")
    for i, (head, value) in enumerate((("tokencls", 0.9), ("qa", 0.2), ("qa", 0.4))):
        run_id = job_run(client, shared, name=f"bert-{head}-{i}", start=T0 + i * 1000,
                         seconds=5, objective=("eval/f1", "max"), evals={"eval/f1": value})
        client.set_tag(run_id, "runner.head", head)
    plain = experiment(client, "plain")
    for i, freeze in enumerate(("head_only", "bitfit")):
        job_run(client, plain, name=f"bert-seqcls-{freeze}", start=T0 + i * 1000, seconds=5,
                evals={"eval/accuracy": 0.5 + i / 10},
                params={"freeze.strategy": freeze, "data.max_length": "64",
                        "data.train_file": f"/a/very/long/path/to/its/training/data/{i}.csv"})
    return directory, values


def test_compare_json_groups_runs_by_objective(mixed_store, tmp_path):
    directory, values = mixed_store
    doc = json.loads(compared(directory, "--format", "json", plot=tmp_path / "p.png"))
    assert doc["objective"] is None  # two objectives: no single one
    groups = {g["objective"]["name"]: g["runs"] for g in doc["groups"]}
    assert list(groups) == ["eval/accuracy", "eval/f1"]
    assert [r["objective"] for r in groups["eval/accuracy"]] == [0.78, 0.74, 0.70]
    assert [r["objective"] for r in groups["eval/f1"]] == [0.50, 0.40, 0.30]
    assert {r["values"]["head"] for r in groups["eval/f1"]} == {"qa"}
    assert [r["objective_name"] for r in doc["runs"]] == ["eval/accuracy"] * 3 + ["eval/f1"] * 3


def test_compare_keeps_heads_that_share_a_metric_name_apart(mixed_store, tmp_path):
    directory, _ = mixed_store
    doc = json.loads(compared(directory, "--experiment", "shared", "--format", "json",
                              plot=tmp_path / "s.png"))
    groups = [(g["head"], [r["objective"] for r in g["runs"]]) for g in doc["groups"]]
    assert groups == [("tokencls", [0.9]), ("qa", [0.4, 0.2])]
    text = compared(directory, "--experiment", "shared", plot=tmp_path / "s.png")
    assert "objective: eval/f1 (max) of head qa, best first" in text


def test_compare_csv_has_an_objective_column(mixed_store, tmp_path):
    directory, _ = mixed_store
    rows = list(csv.DictReader(io.StringIO(compared(directory, "--format", "csv",
                                                    plot=tmp_path / "p.png"))))
    assert [r["objective"] for r in rows] == ["eval/accuracy"] * 3 + ["eval/f1"] * 3
    assert [float(r["objective_value"]) for r in rows] == [0.78, 0.74, 0.70, 0.50, 0.40, 0.30]
    assert rows[3]["eval/f1"] == "0.5" and rows[3]["eval/accuracy"] == ""


def test_compare_plot_has_a_row_of_panels_per_objective(mixed_store, tmp_path):
    import matplotlib.image

    directory, _ = mixed_store
    compared(directory, "--experiment", "plain", plot=tmp_path / "one.png")
    compared(directory, plot=tmp_path / "two.png")
    one = matplotlib.image.imread(str(tmp_path / "one.png")).shape[0]
    two = matplotlib.image.imread(str(tmp_path / "two.png")).shape[0]
    assert two == pytest.approx(2 * one, rel=0.05)


def test_group_by_seed_gives_mean_std_and_n(mixed_store, tmp_path):
    directory, values = mixed_store
    doc = json.loads(compared(directory, "--group-by", "trainer.seed", "--format", "json",
                              plot=tmp_path / "g.png"))
    assert doc["grouped_by"] == "trainer.seed" and doc["keys"] == ["head"]
    for group, head in zip(doc["groups"], ("seqcls", "qa"), strict=True):
        (row,) = group["runs"]  # three seeds, one row
        scores = [v for (h, _), v in values.items() if h == head]
        assert row["n"] == 3 and sorted(row["grouped_values"]) == ["0", "1", "2"]
        assert row["objective"] == pytest.approx(statistics.fmean(scores))
        assert row["objective_std"] == pytest.approx(statistics.stdev(scores))
        assert row["values"] == {"head": head}
    seqcls = doc["groups"][0]["runs"][0]
    assert seqcls["objective"] == pytest.approx(0.74)
    assert seqcls["objective_std"] == pytest.approx(0.04)  # sample std of 0.70, 0.74, 0.78
    assert seqcls["eval"]["eval/loss"] == pytest.approx(0.26)
    assert seqcls["eval_std"]["eval/loss"] == pytest.approx(0.04)
    assert doc["groups"][1]["runs"][0]["objective_std"] == pytest.approx(0.1)
    text = compared(directory, "--group-by", "trainer.seed", plot=tmp_path / "g.png")
    assert "0.74 ± 0.04" in text and "0.4 ± 0.1" in text
    assert "grouped over trainer.seed" in text


def test_only_differing_keeps_just_the_params_that_vary(mixed_store, tmp_path):
    directory, _ = mixed_store
    doc = json.loads(compared(directory, "--experiment", "plain", "--only-differing",
                              "--format", "json", plot=tmp_path / "d.png"))
    # the long path differs too and is kept; what both share (max_length, family) is not
    assert doc["keys"] == ["freeze.strategy", "data.train_file"]
    long_path = "/a/very/long/path/to/its/training/data/1.csv"
    assert doc["runs"][0]["values"] == {"freeze.strategy": "bitfit", "data.train_file": long_path}
    default = json.loads(compared(directory, "--experiment", "plain", "--format", "json",
                                  plot=tmp_path / "d.png"))
    assert default["keys"] == ["freeze.strategy"]  # by default: a few short ones


def test_an_unknown_group_by_key_exits_2_and_suggests_one(mixed_store, tmp_path):
    directory, _ = mixed_store
    result = compare("--group-by", "trainer.sed", "--output", str(tmp_path / "e.png"),
                     cwd=directory)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--group-by trainer.sed: no compared run records" in result.stderr
    assert "e.g. --group-by trainer.seed" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "e.png").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--group-by"], "expected one argument"),
    (["--only-differing=yes"], "ignored explicit argument"),
])
def test_malformed_compare_flags_exit_2(args, message, capsys):
    from runner.track.compare import parser

    with pytest.raises(SystemExit) as exited:
        parser().parse_args(args)
    assert exited.value.code == 2 and message in capsys.readouterr().err


# ------------------------------------------------------------------------- regression


def test_regression_on_sts_b_style_data_is_judged_by_pearson(tmp_path):
    rows = [("A man is playing a guitar.", "A man plays the guitar.", 4.8),
            ("A dog runs in the park.", "A cat sleeps on the sofa.", 0.4),
            ("Two kids are playing.", "Children are playing outside.", 3.6),
            ("The sun is shining.", "It is raining heavily.", 1.0)] * 6
    header = "sentence1\tsentence2\tscore\n"
    for name, part in (("train.tsv", rows), ("dev.tsv", rows[:8])):
        (tmp_path / name).write_text(header + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in part))
    result = run_cli(*fast("seqcls"), "head.regression=true", "data.source=local",
                     f"data.train_file={tmp_path / 'train.tsv'}",
                     f"data.validation_file={tmp_path / 'dev.tsv'}", "trainer.max_steps=3",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "objective eval/pearson = " in result.stdout
    client, (run,) = mlflow_runs(tmp_path / "mlflow.db")
    assert run.data.tags["runner.objective"] == "eval/pearson"
    assert run.data.tags["runner.objective_mode"] == "max"
    assert run.data.params["trainer.objective"] == "eval/pearson"  # recorded as used
    metrics = run.data.metrics
    assert {"eval/pearson", "eval/spearman", "eval/mse"} <= set(metrics)
    assert -1 <= metrics["eval/pearson"] <= 1 and metrics["eval/mse"] >= 0
    assert metrics["objective"] == metrics["eval/pearson"]
    (run_file,) = tmp_path.glob("outputs/**/run.json")
    assert list(json.loads(run_file.read_text())["objective"]) == ["eval/pearson"]

"""What MLflow users expect on a run: datasets, description, source, system metrics, a
logged MLflow model, the registry, the experiment's kind. Checked with MlflowClient in the
store a real sweep left (conftest.ui_sweep), and with the models loaded back."""

from __future__ import annotations

import os

import datasets
import pytest
from omegaconf import OmegaConf

from conftest import compose, fast, mlflow_runs, run_cli
from runner.config.validate import validate
from runner.data.load import RawData
from runner.errors import ConfigError
from runner.track.inputs import dataset_inputs


def children(db):
    client, runs = mlflow_runs(db)
    kids = {r.data.tags["runner.head"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert sorted(kids) == ["qa", "seqcls"], [r.info.run_name for r in runs]
    return client, kids


def logged_model(client, run):
    (output,) = run.outputs.model_outputs
    return client.get_logged_model(output.model_id)


def test_every_child_shows_its_datasets_plan_source_system_metrics_and_model(ui_sweep):
    _, db = ui_sweep
    client, kids = children(db)
    for head, run in kids.items():
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"training", "validation"}, head
        folder = {"seqcls": "sentiment", "qa": "qa"}[head]
        assert inputs["training"].name.startswith(f"{folder}/train.json")
        assert '"num_rows": 48' in inputs["training"].profile
        assert '"num_rows": 16' in inputs["validation"].profile
        assert "mlflow_colspec" in inputs["training"].schema
        assert inputs["training"].digest != inputs["validation"].digest
        note = run.data.tags["mlflow.note.content"]
        assert f"with a {head} head" in note and "freezing head_only" in note
        assert f"{run.data.metrics['params/trainable']:,.0f} of" in note
        assert run.data.tags["mlflow.source.name"] == "python -m runner"
        assert run.data.tags["mlflow.source.type"] == "LOCAL"
        assert any(k.startswith("system/cpu") for k in run.data.metrics), run.data.metrics
        assert any(k.startswith("system/system_memory") for k in run.data.metrics)
        model = logged_model(client, run)
        assert model.source_run_id == run.info.run_id and str(model.status) == "READY"


def test_the_experiment_opens_in_the_model_training_view(ui_sweep):
    _, db = ui_sweep
    client, _ = mlflow_runs(db)
    tags = client.get_experiment_by_name("runner").tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_sweeps_best_child_per_objective_is_registered_as_champion(ui_sweep):
    _, db = ui_sweep
    client, runs = mlflow_runs(db)
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep_parent") == "true"]
    for objective in ("eval/accuracy", "eval/f1"):  # seqcls and qa: one model each
        best = parent.data.tags[f"runner.best_child.{objective}"]
        name = "tiny-" + objective.replace("/", "-")
        versions = client.search_model_versions(f"name='{name}'")
        assert len(versions) == 1  # the best child only, not every child
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.run_id == best
        assert champion.source == logged_model(client, client.get_run(best)).model_uri
    assert not client.search_model_versions("name='tiny'")


def test_a_logged_classifier_loads_as_a_pipeline_and_as_pyfunc(ui_sweep):
    import mlflow

    _, db = ui_sweep
    client, kids = children(db)
    uri = logged_model(client, kids["seqcls"]).model_uri
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    try:
        pipe = mlflow.transformers.load_model(uri)
        (first,) = pipe("a fine film")
        assert first["label"] in ("negative", "positive") and 0 <= first["score"] <= 1
        predicted = mlflow.pyfunc.load_model(uri).predict(["a fine film"])
        assert list(predicted["label"]) == [first["label"]]  # the same model either way
    finally:
        mlflow.set_tracking_uri(None)


def test_a_logged_qa_model_answers_with_a_span_of_its_context(ui_sweep):
    import mlflow
    import pandas as pd

    _, db = ui_sweep
    client, kids = children(db)
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    try:
        model = mlflow.pyfunc.load_model(logged_model(client, kids["qa"]).model_uri)
        context = "The tower stands in Paris and is made of iron."
        (answer,) = model.predict(pd.DataFrame([{"question": "Where?", "context": context}]))
    finally:
        mlflow.set_tracking_uri(None)
    assert answer and answer in context


def raw_data(rows: list[dict], held_out: bool = False) -> RawData:
    half = len(rows) // 2
    return RawData(train=datasets.Dataset.from_list(rows[:half]),
                   validation=datasets.Dataset.from_list(rows[half:]), test=None, labels=None,
                   sources={"train": "/data/movies/train.csv",
                            **({} if held_out else {"validation": "/data/movies/dev.csv"})},
                   held_out=held_out)


def test_dataset_digest_follows_the_content_not_the_object():
    rows = [{"text": f"review {i}", "label": i % 2} for i in range(6)]
    data_cfg = OmegaConf.create({"source": "local", "hub_config": None})
    first = dataset_inputs(raw_data(rows), data_cfg)
    again = dataset_inputs(raw_data([dict(r) for r in rows]), data_cfg)
    changed = dataset_inputs(raw_data([{**rows[0], "label": 1}, *rows[1:]]), data_cfg)
    assert [i.dataset.digest for i in first] == [i.dataset.digest for i in again]
    assert first[0].dataset.digest != changed[0].dataset.digest
    assert first[1].dataset.digest == changed[1].dataset.digest  # validation untouched
    assert [i.dataset.name for i in first] == ["movies/train.csv", "movies/dev.csv"]
    assert '"uri": "/data/movies/train.csv"' in first[0].dataset.source
    held = dataset_inputs(raw_data(rows, held_out=True), data_cfg)
    assert held[1].dataset.name == "movies/train.csv (held out)"
    assert [i.tags[0].value for i in held] == ["training", "validation"]


@pytest.mark.parametrize("extra,expected", [
    (["logger.log_model=true", "logger.register_as=team/model"], "not a registered model"),
    (["logger.register_as=model"], "add logger.log_model=true"),
])
def test_register_as_is_checked_before_anything_runs(extra, expected):
    with pytest.raises(ConfigError) as err:
        validate(compose(["model=bert", "head=seqcls", *extra]))
    (problem,) = err.value.problems
    assert problem.key == "logger.register_as" and expected in str(problem)


def test_a_single_run_registers_its_model_without_an_alias(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = run_cli(*fast("tokencls"), "trainer.max_steps=2", "logger.log_model=true",
                     "logger.register_as=solo", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    client, (run,) = mlflow_runs(tmp_path / "mlflow.db")
    (version,) = client.search_model_versions("name='solo'")
    assert version.run_id == run.info.run_id and version.aliases == []
    assert version.source == logged_model(client, run).model_uri
    assert {"training", "validation"} == {i.tags[0].value for i in run.inputs.dataset_inputs}

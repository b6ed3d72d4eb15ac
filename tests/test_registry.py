"""The task registry is the one place per head: every registered head is complete, and a
new head needs nothing but its Task subclass and one `register()` call."""

from __future__ import annotations

import pytest
import transformers
from hydra.core.config_store import ConfigStore

from conftest import REPO, compose, tiny
from runner.config.families import FAMILIES, HeadSpec
from runner.config.tasks import TASKS, Metric, TaskSpec, register
from runner.config.validate import validate
from runner.data.load import LABELS, SAMPLE_DIR
from runner.errors import ConfigError
from runner.tasks import task_class
from runner.tasks.base import Task
from runner.tasks.seqcls import SequenceClassification

BODY_CACHE_KINDS = {"pooled", "first", "last", "sequence"}  # runner.train.body_cache


def offered_by(head: str) -> set[str]:
    return {name for name, family in FAMILIES.items() if head in family.heads}


def head_config_text(name: str) -> str:
    """conf/head/<name>.yaml, or the node register() stored for Hydra."""
    head_yaml = REPO / "conf" / "head" / f"{name}.yaml"
    if head_yaml.is_file():
        return head_yaml.read_text()
    node = ConfigStore.instance().repo.get("head", {}).get(f"{name}.yaml")
    return f"task: {node.node.task}" if node is not None else ""


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_head_is_complete(name):
    assert_complete(name)


def assert_complete(name: str) -> None:
    spec = TASKS[name]
    assert spec.name == name
    implementation = task_class(name)
    assert issubclass(implementation, Task) and implementation.name == name
    assert hasattr(transformers, spec.auto_class), spec.auto_class
    folder, *files = spec.sample
    assert all((SAMPLE_DIR / folder / f).is_file() for f in files), spec.sample
    assert f"task: {name}" in head_config_text(name)
    roles = (*spec.required_roles, *spec.optional_roles)
    assert spec.required_roles and set(spec.tokenizer_texts) <= set(roles)
    assert spec.objective in spec.metric_names()
    if spec.regression_metrics:
        assert spec.regression_objective in spec.metric_names(regression=True)
    assert all(m.mode in ("max", "min") for m in (*spec.metrics, *spec.regression_metrics))
    assert spec.labels in ("", *LABELS)
    families = offered_by(name)
    assert families, f"no family offers {name}"
    for family in families:
        assert hasattr(transformers, FAMILIES[family].heads[name].model_class)
    assert set(spec.body_cache) <= families, "body_cache names a family without this head"
    assert set(spec.body_cache.values()) <= BODY_CACHE_KINDS


def test_family_tables_name_only_registered_heads():
    for family in FAMILIES.values():
        assert set(family.heads) <= set(TASKS), family.name


# --- a head added through the registry alone ------------------------------------------------


class EchoClassification(SequenceClassification):
    """A stand-in for a new head's module: a Task subclass, here reusing seqcls' steps."""

    name = "echo_cls"


ECHO = TaskSpec(
    "echo_cls", "AutoModelForSequenceClassification", f"{__name__}:EchoClassification",
    required_roles=("text", "label"),
    sample=("sentiment", "train.jsonl", "validation.jsonl"),
    tokenizer_texts=("text",),
    metrics=(Metric("loss", "min", "unbounded"), Metric("accuracy")),
    objective="accuracy",
    labels="classes", problem_type="single_label_classification",
    body_cache={"bert": "pooled"},
)


@pytest.fixture
def echo_head():
    register(ECHO,
             family_heads={"bert": HeadSpec("BertForSequenceClassification", "bert",
                                            ("classifier",))},
             head_config={"task": "echo_cls", "num_labels": 3})
    yield ECHO
    TASKS.pop(ECHO.name)
    FAMILIES["bert"].heads.pop(ECHO.name)
    ConfigStore.instance().repo["head"].pop(f"{ECHO.name}.yaml")


def test_a_new_head_composes_validates_and_inspects(echo_head):
    from runner.model.report import inspect_model

    assert_complete("echo_cls")
    cfg = compose(tiny("bert", "head=echo_cls"))
    assert (cfg.head.task, cfg.head.num_labels) == ("echo_cls", 3)
    validate(cfg)
    assert task_class("echo_cls") is EchoClassification
    doc = inspect_model(cfg)
    assert doc["model_class"] == "BertForSequenceClassification"
    assert doc["key_config"]["num_labels"] == 3
    assert doc["trainable_parameter_names"] == ["classifier.weight", "classifier.bias"]


def test_a_new_head_gets_its_objective_checked(echo_head):
    with pytest.raises(ConfigError) as info:
        validate(compose(tiny("bert", "head=echo_cls", "trainer.objective=eval/bleu")))
    (problem,) = info.value.problems
    assert "eval/bleu" in str(problem) and "eval/accuracy" in str(problem)


def test_a_new_head_is_refused_where_no_family_offers_it(echo_head):
    with pytest.raises(ConfigError, match="no echo_cls model for the gpt2 family"):
        validate(compose(tiny("gpt2", "head=echo_cls")))

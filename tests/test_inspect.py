"""`python -m runner.inspect` as a user runs it: the issue's exercises and its bad inputs."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, compose, run_cli, tiny


def inspect_json(*overrides: str) -> dict:
    result = run_cli(*overrides, "inspect.output=json", module="runner.inspect")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bert_base_three_labels_head_only_exact_counts():
    doc = inspect_json("model=bert", "model.init=scratch", "head=seqcls", "head.num_labels=3",
                       "freeze=head_only")
    assert doc["model_class"] == "BertForSequenceClassification"
    assert doc["config"]["hidden_size"] == 768
    assert doc["config"]["num_attention_heads"] == 12
    assert doc["params"]["total"] == 109_484_547
    assert doc["params"]["trainable"] == 2_307
    assert doc["params"]["frozen"] == 109_484_547 - 2_307
    assert doc["trainable_parameter_names"] == ["classifier.weight", "classifier.bias"]
    modules = {m["name"]: m for m in doc["modules"]}
    assert modules["classifier"]["total"] == 2_307 and modules["classifier"]["trainable"] == 2_307
    assert modules["bert.encoder"]["trainable"] == 0


def test_exercise_presets_match_the_issue():
    doc = inspect_json("experiment=bert_seqcls_3labels")
    assert doc["key_config"]["num_labels"] == 3 and doc["params"]["trainable"] == 109_484_547
    modules = {m["name"]: m for m in doc["modules"]}
    assert modules["classifier"]["class"] == "Linear"
    doc = inspect_json("experiment=bert_custom_heads")
    assert doc["config"]["num_attention_heads"] == 8
    doc = inspect_json("experiment=bert_head_only")
    assert (doc["params"]["trainable"], doc["params"]["total"]) == (2_307, 109_484_547)


def test_attention_heads_override_is_reflected():
    doc = inspect_json("model=bert", "model.init=scratch",
                       "+model.config_overrides.hidden_size=32",
                       "+model.config_overrides.num_hidden_layers=1",
                       "+model.config_overrides.num_attention_heads=4")
    assert doc["config"]["num_attention_heads"] == 4
    assert doc["key_config"]["hidden_size"] == 32


def test_table_output_shows_the_tree_and_the_split():
    result = run_cli("model=minilm", "freeze=head_only", module="runner.inspect")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "BertForSequenceClassification" in out
    assert "encoder" in out and "classifier" in out
    assert "trainable 770 (" in out  # 384 * 2 + 2
    assert "pooling    mean: the mean of the token states" in out  # MiniLM's own pooling


@pytest.mark.parametrize("model,head", [("minilm", "seqcls"), ("gpt2", "causal_lm"),
                                        ("t5", "seq2seq")])
def test_every_strategy_counts_agree_with_the_trainable_names(model, head):
    """The inspect report of each strategy, checked against the model's own tensor sizes."""
    from runner.model.build import build_config, build_model
    from runner.model.report import inspect_model

    base = [f"model={model}", f"head={head}"] if model == "minilm" else tiny(model,
                                                                           f"head={head}")
    cfg = compose(base)
    sizes = {n: p.numel() for n, p in build_model(cfg, build_config(cfg)).named_parameters()}
    strategies = ["none", "head_only", "embeddings", "bottom_n", "top_n", "bitfit", "layernorm",
                  "custom"] + (["encoder"] if model == "t5" else [])
    for strategy in strategies:
        extra = {"bottom_n": ["freeze.n=1"], "top_n": ["freeze.n=1"],
                 "custom": ["freeze.trainable=['\\.0\\.']"]}.get(strategy, [])
        doc = inspect_model(compose([*base, f"freeze={strategy}", *extra]))
        p = doc["params"]
        names = doc["trainable_parameter_names"]
        assert p["total"] == sum(sizes.values()), strategy  # a tied tensor counts once
        assert p["trainable"] == sum(sizes[n] for n in names), strategy
        assert p["trainable"] + p["frozen"] == p["total"]
        assert p["trainable"] > 0 and (p["trainable"] == p["total"]) == (strategy == "none")
        top = [m for m in doc["modules"] if m["name"] != "(model)" and "." not in m["name"]]
        assert sum(m["trainable"] for m in top) == p["trainable"], strategy


@pytest.mark.parametrize("args,expect", [
    (["model=bogus"], "Available options in 'model'"),
    (["freeze=custom", "freeze.trainable=[nothing_matches_this]"],
     "'nothing_matches_this' matches no parameter"),
    (["model=bert", "head=seq2seq"], "no seq2seq model for the bert family"),
    (["model=minilm", "+model.config_overrides.num_hidden_layers=2"], "model.init=scratch"),
    (["model=bert", "model.init=scratch", "+model.config_overrides.num_attention_heads=7"],
     "hidden size 768 is not divisible by the number of attention heads 7"),
])
def test_bad_input_exits_non_zero_with_the_problem_and_the_fix(args, expect):
    result = run_cli(*args, module="runner.inspect")
    assert result.returncode == 2, result.stdout
    assert expect in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_help_is_fast_and_says_what_it_does():
    result = run_cli("--help", module="runner.inspect")
    assert result.returncode == 0
    assert "trainable/frozen split" in result.stdout
    assert REPO.name  # runs from the checkout

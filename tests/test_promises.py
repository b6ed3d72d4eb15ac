"""README promises whose bugs once went unnoticed (scripts/mutants.py plants them): each test
here fails when its promise breaks.
"""

from __future__ import annotations

import pytest

from conftest import compose, fast, tiny
from runner.config.defaults import fill_defaults
from runner.config.families import family_of, head_spec
from runner.data.load import load_data
from runner.data.tokenizer import load_tokenizer
from runner.model.build import build_config, build_model
from runner.model.freeze import plan_for_model
from runner.tasks import task_for


def test_the_features_cache_keeps_apart_what_data_max_length_changes():
    """Two lengths, one cache: each run gets features cut at its own length."""
    longest = {}
    for max_length in (12, 40):
        cfg = compose(fast("seqcls", "bert", f"data.max_length={max_length}"))
        raw = load_data(cfg)
        task = task_for(cfg, load_tokenizer(cfg, raw), raw.labels)
        longest[max_length] = max(len(ids) for ids in task.features(raw).train["input_ids"])
    assert longest[12] == 12 and longest[40] > 12, longest


def test_no_weight_decay_on_biases_and_norms():
    from runner.train.setup import optimizer_groups

    cfg = compose(tiny("bert", "head=seqcls", "head.num_labels=2"))
    model = build_model(cfg, build_config(cfg))
    groups = optimizer_groups(model, 0.01)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in groups}
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[i] for i in by_decay[0.0]}
    assert no_decay == {n for n in names.values() if n.endswith("bias") or "LayerNorm" in n}
    assert {names[i] for i in by_decay[0.01]} == set(names.values()) - no_decay


@pytest.mark.parametrize("strategy,lr", [("head_only", 1e-2), ("bitfit", 1e-3),
                                         ("layernorm", 1e-3), ("none", 5e-5), ("top_n", 5e-5),
                                         ("embeddings", 5e-5)])
def test_default_learning_rate_by_strategy(strategy, lr):
    cfg = compose([f"freeze={strategy}", "freeze.n=1"])
    fill_defaults(cfg)
    assert cfg.trainer.lr == lr
    given = compose([f"freeze={strategy}", "freeze.n=1", "trainer.lr=0.3"])
    fill_defaults(given)
    assert given.trainer.lr == 0.3


@pytest.mark.parametrize("family,layers", [("bert", "num_hidden_layers"), ("gpt2", "n_layer")])
@pytest.mark.parametrize("strategy,n", [("bottom_n", 2), ("top_n", 3)])
def test_freeze_n_above_one_counts_every_block(family, layers, strategy, n):
    from test_freeze import expected

    cfg = compose(tiny(family, "head=seqcls", f"model.config_overrides.{layers}=4",
                       f"freeze={strategy}", f"freeze.n={n}"))
    model = build_model(cfg, build_config(cfg))
    plan = plan_for_model(model, family_of(cfg), head_spec(cfg), cfg.freeze)
    want = expected(model, family, "seqcls", strategy, n)
    assert set(plan.trainable_names) == want, set(plan.trainable_names) ^ want


def test_keep_checkpoints_keeps_exactly_the_newest(tmp_path):
    from runner.run import run

    out = tmp_path / "run"
    run(compose([*fast("seqcls", "bert", "trainer.max_steps=5", "trainer.save_every=1",
                       "trainer.keep_checkpoints=3"), f"trainer.output_dir={out}",
                 "logger=none"]))
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == [f"step-{n:08d}" for n in (3, 4, 5)]

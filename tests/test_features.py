"""The frozen-body feature cache is exact: the head's loss and gradients are the same with
and without it, for every (family, head) it covers, under dynamic padding."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from conftest import compose, fast
from runner.config.families import FAMILIES, family_of, head_spec
from runner.config.pooling import RUNNER_POOLINGS
from runner.data.load import load_data
from runner.data.tokenizer import config_values, load_tokenizer
from runner.model.build import build_config, build_model
from runner.model.freeze import apply_plan, plan_for_model
from runner.model.pooled import pooling_of
from runner.run import run
from runner.tasks import task_for
from runner.train import body_cache as feature_cache
from runner.train.batching import eval_batches
from runner.train.loop import frozen_modules_to_eval


def setup(family: str, head: str, *extra: str):
    cfg = compose(fast(head, family, "freeze=head_only", "data.max_length=96", *extra))
    raw = load_data(cfg)
    tok = load_tokenizer(cfg, raw)
    model = build_model(cfg, build_config(cfg, raw.labels, config_values(cfg, tok)))
    plan = plan_for_model(model, family_of(cfg), head_spec(cfg), cfg.freeze)
    apply_plan(model, plan)
    task = task_for(cfg, tok, raw.labels)
    return cfg, model, plan, task, task.features(raw)


def loss_and_grads(model, batch):
    torch.manual_seed(0)  # the head's own dropout draws the same mask both times
    loss = model(**batch).loss
    trainable = [p for p in model.parameters() if p.requires_grad]
    return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, trainable)]


@pytest.mark.parametrize("family,head", sorted(feature_cache.KINDS))
def test_cached_loss_and_gradients_equal_the_real_forward(family, head):
    assert_cache_is_exact(*setup(family, head))


# runner's pooled classes: every pooling that is not the family's native one (those keep
# the family's class and are covered above).
POOLED = [(f, p) for f in ("bert", "roberta", "distilbert", "gpt2")
          for p in RUNNER_POOLINGS if p != FAMILIES[f].heads["seqcls"].pooling]


@pytest.mark.parametrize("family,pooling", POOLED)
def test_cached_pooled_vector_gives_the_same_loss_and_gradients(family, pooling):
    cfg, model, plan, task, feats = setup(family, "seqcls", f"head.pooling={pooling}")
    assert feature_cache.kind_for(cfg) == feature_cache.POOLING_KINDS[pooling]
    assert_cache_is_exact(cfg, model, plan, task, feats)


def assert_cache_is_exact(cfg, model, plan, task, feats):
    assert feature_cache.why_not(cfg, plan, head_spec(cfg).body) is None
    model.train()
    frozen_modules_to_eval(model)
    collate = task.collator(model)
    lengths = [len(ids) for ids in feats.train["input_ids"]]
    # a batch mixing the shortest and longest rows: heavy dynamic padding
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    rows = order[:3] + order[-3:]
    batch = collate([feats.train[i] for i in rows])
    index = batch.pop(feature_cache.INDEX)
    assert len(set(lengths[i] for i in rows)) > 1
    real_loss, real_grads = loss_and_grads(model, batch)

    body = model.get_submodule(head_spec(cfg).body)
    loader = DataLoader(feats.train, collate_fn=collate,
                        batch_sampler=eval_batches(lengths, 8))
    store = feature_cache.compute(body, feature_cache.kind_for(cfg),
                                  {"train": (loader, len(lengths), max(lengths))},
                                  task.tokenizer.pad_token_id, Accelerator(cpu=True),
                                  pooling=pooling_of(model))
    replay = feature_cache.Replay(store, task.tokenizer.pad_token_id, torch.device("cpu"))
    replay.select("train", index)
    with feature_cache.replaying(body, replay):
        cached_loss, cached_grads = loss_and_grads(model, batch)
    torch.testing.assert_close(cached_loss, real_loss, rtol=1e-5, atol=1e-6)
    for real, cached in zip(real_grads, cached_grads, strict=True):
        torch.testing.assert_close(cached, real, rtol=1e-4, atol=1e-6)
    assert "forward" not in vars(body)  # the body is its own again afterwards


def test_cache_is_not_used_when_it_would_not_be_exact():
    cfg, model, plan, *_ = setup("bert", "seqcls", "trainer.frozen_eval_mode=false")
    assert "dropout" in feature_cache.why_not(cfg, plan, "bert")
    cfg, model, plan, *_ = setup("bert", "seqcls", "freeze=top_n", "freeze.n=1")
    assert "not entirely frozen" in feature_cache.why_not(cfg, plan, "bert")
    cfg, model, plan, *_ = setup("t5", "seqcls")
    assert "not available for t5" in feature_cache.why_not(cfg, plan, "transformer")


def trained(tmp_path, name, *extra):
    cfg = compose(["model=minilm", "data.max_train_samples=96", "data.max_eval_samples=48",
                   "trainer.max_epochs=2", "logger=none", f"trainer.output_dir={tmp_path / name}",
                   "trainer.save_model=false", *extra])
    run(cfg)
    return json.loads((tmp_path / name / "run.json").read_text())["metrics"]


@pytest.mark.parametrize("head", ["seqcls", "tokencls"])
def test_training_with_the_cache_matches_training_without(tmp_path, caplog, head):
    caplog.set_level("INFO")
    with_cache = trained(tmp_path, "cached", f"head={head}")
    assert "frozen-body feature cache: computed" in caplog.text
    caplog.clear()
    without = trained(tmp_path, "plain", f"head={head}", "trainer.cache_features=false")
    assert "feature cache not used: trainer.cache_features=false" in caplog.text
    for key, value in without.items():
        if key.startswith("eval/"):
            assert with_cache[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_cache_over_its_size_limit_is_skipped_with_the_reason(tmp_path, caplog):
    caplog.set_level("INFO")
    trained(tmp_path, "big", "head=tokencls", "trainer.cache_max_mb=1", "trainer.max_epochs=1")
    assert "more than trainer.cache_max_mb=1" in caplog.text

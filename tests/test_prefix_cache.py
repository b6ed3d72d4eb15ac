"""The frozen-prefix cache is exact: loss and gradients are the same with and without it,
for every family x head it covers, under dynamic padding and with dropout on in the
trainable blocks; and the comparison is sharp enough to catch a cache that loses the
attention mask or the position information at the boundary."""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager, nullcontext

import pytest
import torch
from accelerate import Accelerator
from test_features import loss_and_grads, setup

from conftest import compose
from runner.config.families import head_spec
from runner.run import run
from runner.train import body_cache, prefix_cache
from runner.train.loop import frozen_modules_to_eval
from runner.train.setup import _cache_loaders

# (family, head, freeze overrides, frozen blocks expected at the boundary; None: encoder)
CASES = [
    *[(family, head, ("freeze=bottom_n", "freeze.n=1"), 1)
      for family in ("bert", "roberta", "distilbert", "gpt2")
      for head in ("seqcls", "tokencls", "qa", "causal_lm")
      if (family, head) != ("distilbert", "causal_lm")],
    ("bert", "seqcls", ("freeze=top_n", "freeze.n=1"), 1),
    ("gpt2", "seqcls", ("freeze=top_n", "freeze.n=1"), 1),
    ("bert", "tokencls", ("freeze=embeddings",), 0),
    ("gpt2", "qa", ("freeze=embeddings",), 0),
    ("roberta", "seqcls", ("freeze=custom", "freeze.frozen=['embeddings','layer.0.']"), 1),
    ("distilbert", "qa", ("freeze=bottom_n", "freeze.n=2"), 2),
    ("t5", "tokencls", ("freeze=embeddings",), 0),
    *[("t5", head, ("freeze=encoder",), None)
      for head in ("seq2seq", "seqcls", "qa", "tokencls")],
]


def ready(family, head, freeze, *extra):
    """A tiny model under the freeze plan, in training mode as the trainer puts it."""
    cfg, model, plan, task, feats = setup(family, head, *freeze, *extra)
    body_name = head_spec(cfg).body
    model.train()
    layout = prefix_cache.layout_of(cfg, model)
    frozen_modules_to_eval(model, prefix_cache.frozen_dropout(cfg, model, plan, layout,
                                                               body_name))
    return cfg, model, plan, task, feats, body_name


def padded_batch(task, model, feats):
    """The three shortest and three longest rows together: heavy dynamic padding."""
    lengths = [len(ids) for ids in feats.train["input_ids"]]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    rows = order[:3] + order[-3:]
    batch = task.collator(model)([feats.train[i] for i in rows])
    if len(set(lengths)) > 1:  # causal_lm rows are blocks of one length: nothing to pad
        assert len({lengths[i] for i in rows}) > 1, "the batch must mix lengths"
    return batch, batch.pop(body_cache.INDEX), lengths


def cached(cfg, model, plan, task, feats, body_name, tmp_path, max_mb=1024):
    lengths = {"train": [len(ids) for ids in feats.train["input_ids"]]}
    loaders = _cache_loaders(feats, task.collator(model), lengths, 4)
    cfg.trainer.cache_max_mb = max_mb
    replay = prefix_cache.prepare(cfg, plan, model, body_name, loaders, Accelerator(cpu=True),
                                  tmp_path, task.tokenizer.pad_token_id)
    assert replay is not None, "the prefix cache declined a covered case"
    model.train()  # compute put the body in eval mode; the trainer restores it like this
    frozen_modules_to_eval(model, prefix_cache.frozen_dropout(
        cfg, model, plan, prefix_cache.layout_of(cfg, model), body_name))
    return replay


def assert_same(real, cached_result):
    (real_loss, real_grads), (cached_loss, cached_grads) = real, cached_result
    torch.testing.assert_close(cached_loss, real_loss, rtol=1e-5, atol=1e-6)
    for r, c in zip(real_grads, cached_grads, strict=True):
        torch.testing.assert_close(c, r, rtol=1e-4, atol=1e-6)


def with_replay(model, body, replay, index, batch):
    replay.select("train", index)
    with body_cache.replaying(body, replay):
        return loss_and_grads(model, batch)


@pytest.mark.parametrize("family,head,freeze,blocks", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2][0][7:]}" for c in CASES])
def test_cached_prefix_gives_the_same_loss_and_gradients(family, head, freeze, blocks,
                                                          tmp_path):
    cfg, model, plan, task, feats, body_name = ready(family, head, freeze)
    prefix = prefix_cache.find(cfg, plan, prefix_cache.layout_of(cfg, model), body_name)
    assert isinstance(prefix, prefix_cache.Prefix), prefix
    assert prefix.encoder == (blocks is None) and prefix.blocks == (blocks or 0)
    batch, index, _ = padded_batch(task, model, feats)
    real = loss_and_grads(model, batch)
    if any(isinstance(m, torch.nn.Dropout) and m.training and m.p for m in model.modules()):
        torch.manual_seed(1)  # dropout is on in the trainable part: another seed, another loss
        assert not torch.equal(model(**batch).loss.detach(), real[0])

    body = model.get_submodule(body_name) if body_name else model
    replay = cached(cfg, model, plan, task, feats, body_name, tmp_path)
    ran = []  # layers inside the stood-in modules that still ran: none may
    hooks = [m.register_forward_hook(lambda *_: ran.append(1))
             for module, _ in replay.stand_ins(body) for m in module.modules()
             if m is not module and isinstance(m, torch.nn.Linear | torch.nn.Embedding)]
    assert_same(real, with_replay(model, body, replay, index, batch))
    for hook in hooks:
        hook.remove()
    assert not ran
    assert "forward" not in vars(body.get_submodule(prefix.entry))  # its own again


@contextmanager
def positions_zeroed(model):
    """A broken cache: the boundary states computed without position embeddings."""
    module = model.get_submodule("bert.embeddings.position_embeddings")
    module.forward = lambda ids: torch.zeros((*ids.shape, module.embedding_dim))
    try:
        yield
    finally:
        del module.forward


@pytest.mark.parametrize("broken", ["mask below", "mask above", "positions"])
def test_a_cache_that_loses_the_mask_or_the_positions_is_caught(broken, tmp_path,
                                                                 monkeypatch):
    cfg, model, plan, task, feats, body_name = ready(
        "bert", "tokencls", ("freeze=bottom_n", "freeze.n=1"))
    batch, index, _ = padded_batch(task, model, feats)
    real = loss_and_grads(model, batch)
    if broken == "mask below":  # the frozen block ran without the attention mask
        def unmasked(batch, inputs=body_cache._model_inputs):
            out = inputs(batch)
            return {**out, "attention_mask": torch.ones_like(out["attention_mask"])}
        monkeypatch.setattr(body_cache, "_model_inputs", unmasked)
    lengths = {"train": [len(ids) for ids in feats.train["input_ids"]]}
    loaders = _cache_loaders(feats, task.collator(model), lengths, 4)
    with positions_zeroed(model) if broken == "positions" else nullcontext():
        replay = prefix_cache.prepare(cfg, plan, model, body_name, loaders,
                                      Accelerator(cpu=True), tmp_path,
                                      task.tokenizer.pad_token_id)
    model.train()
    frozen_modules_to_eval(model)
    if broken == "mask above":  # the trainable blocks ran without it
        batch = {**batch, "attention_mask": torch.ones_like(batch["attention_mask"])}
    with pytest.raises(AssertionError):
        assert_same(real, with_replay(model, model.bert, replay, index, batch))


def test_the_cache_spills_to_disk_beyond_its_limit_and_cleans_up(tmp_path, isolated_cache,
                                                                  caplog):
    caplog.set_level("INFO")
    cfg, model, plan, task, feats, body_name = ready(
        "gpt2", "tokencls", ("freeze=bottom_n", "freeze.n=1"))
    batch, index, _ = padded_batch(task, model, feats)
    real = loss_and_grads(model, batch)
    replay = cached(cfg, model, plan, task, feats, body_name, tmp_path, max_mb=0)
    folder = replay.store.folder
    assert folder is not None and folder.parent == isolated_cache  # $RUNNER_CACHE_DIR
    assert "on disk" in caplog.text
    assert_same(real, with_replay(model, model.transformer, replay, index, batch))
    del replay
    gc.collect()
    assert not folder.exists()


@pytest.mark.parametrize("family,head,freeze,reason", [
    ("bert", "seqcls", ("freeze=bitfit",), "the embeddings train under freeze=bitfit"),
    ("bert", "seqcls", ("freeze=none",), "the embeddings train under freeze=none"),
    ("t5", "seq2seq", ("freeze=bottom_n", "freeze.n=1"), "caches only its whole encoder"),
    ("t5", "tokencls", ("freeze=bottom_n", "freeze.n=1"), "blocks of t5 cannot be cached"),
    ("bert", "seqcls", ("freeze=top_n", "freeze.n=1", "trainer.cache_features=false"),
     "trainer.cache_features=false"),
    ("bert", "seqcls", ("freeze=top_n", "freeze.n=1", "trainer.frozen_eval_mode=false"),
     "frozen_eval_mode=false"),
])
def test_no_prefix_cache_says_why(family, head, freeze, reason):
    cfg, model, plan, task, feats = setup(family, head, *freeze)
    found = prefix_cache.find(cfg, plan, prefix_cache.layout_of(cfg, model),
                              head_spec(cfg).body)
    assert isinstance(found, str) and reason in found


def trained(tmp_path, name, *extra):
    cfg = compose(["model=minilm", "data.max_train_samples=96", "data.max_eval_samples=48",
                   "trainer.max_epochs=2", "logger=none", f"trainer.output_dir={tmp_path / name}",
                   "trainer.save_model=false", "freeze=top_n", "freeze.n=1", *extra])
    run(cfg)
    return json.loads((tmp_path / name / "run.json").read_text())["metrics"]


def test_training_with_the_prefix_cache_matches_training_without(tmp_path, caplog):
    caplog.set_level("INFO")
    with_cache = trained(tmp_path, "cached")
    assert ("frozen prefix cached: embeddings + blocks 0-4 of bert.encoder.layer"
            in caplog.text)
    caplog.clear()
    without = trained(tmp_path, "plain", "trainer.cache_features=false")
    assert "frozen prefix not cached: trainer.cache_features=false" in caplog.text
    for key, value in without.items():
        if key.startswith("eval/"):
            assert with_cache[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key

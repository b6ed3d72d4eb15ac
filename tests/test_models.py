"""Model building: every family x head, pretrained from real files, scratch from config."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from conftest import compose, tiny
from runner.config.families import FAMILIES
from runner.errors import ModelError
from runner.model.build import build_config, build_model

PAIRS = [(f, h) for f, spec in FAMILIES.items() for h in spec.heads]


@pytest.mark.parametrize("family,head", PAIRS)
def test_every_supported_pair_builds_and_runs_forward(family, head):
    cfg = compose(tiny(family, f"head={head}"))
    model = build_model(cfg, build_config(cfg))
    assert type(model).__name__ == FAMILIES[family].heads[head].model_class
    ids = torch.randint(3, 90, (2, 7))
    if family == "t5":
        ids[:, -1] = model.config.eos_token_id  # T5's classifier reads the </s> position
    kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if head == "seq2seq":
        kwargs["decoder_input_ids"] = ids[:, :3]
    if family == "gpt2" and head == "seqcls":
        model.config.pad_token_id = 0
    out = model(**kwargs)
    assert torch.isfinite(out[0]).all()


def test_scratch_model_reflects_a_different_number_of_heads():
    cfg = compose(["model=bert", "model.init=scratch",
                   "+model.config_overrides.num_attention_heads=8",
                   *[f"+model.config_overrides.{k}" for k in
                     ("num_hidden_layers=1", "hidden_size=64", "intermediate_size=32")]])
    model = build_model(cfg, build_config(cfg))
    attention = model.bert.encoder.layer[0].attention.self
    assert model.config.num_attention_heads == 8
    assert attention.num_attention_heads == 8 and attention.attention_head_size == 8


def test_unknown_override_key_is_named():
    cfg = compose(tiny("bert", "+model.config_overrides.num_attention_head=4"))
    with pytest.raises(ModelError, match="num_attention_head is not a key of BertConfig"):
        build_config(cfg)


@pytest.fixture()
def saved_tiny_bert(tmp_path):
    cfg = compose(tiny("bert", "head=seqcls"))
    model = build_model(cfg, build_config(cfg))
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt", model


def test_pretrained_loads_real_weights_from_a_saved_directory(saved_tiny_bert):
    path, original = saved_tiny_bert
    cfg = compose(["model=bert", f"model.checkpoint={path}", "head=seqcls"])
    loaded = build_model(cfg, build_config(cfg))
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name


def test_pretrained_with_another_head_gets_a_fresh_head_and_the_same_body(saved_tiny_bert):
    path, original = saved_tiny_bert
    cfg = compose(["model=bert", f"model.checkpoint={path}", "head=tokencls",
                   "head.num_labels=5"])
    loaded = build_model(cfg, build_config(cfg))
    assert loaded.classifier.out_features == 5
    assert torch.equal(loaded.bert.encoder.layer[1].output.dense.weight,
                       original.bert.encoder.layer[1].output.dense.weight)


def test_minilm_loads_the_packaged_pretrained_weights():
    cfg = compose(["model=minilm", "head=seqcls", "head.num_labels=3"])
    model = build_model(cfg, build_config(cfg))
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    weights = f"{cfg.model.checkpoint}/model.safetensors"
    with safe_open(weights, "pt") as f:
        expected = f.get_tensor("encoder.layer.5.attention.self.query.weight")
    assert torch.equal(model.bert.encoder.layer[5].attention.self.query.weight, expected)
    assert model.classifier.out_features == 3


def test_checkpoint_of_another_architecture_is_refused(saved_tiny_bert):
    path, _ = saved_tiny_bert
    cfg = compose(["model=gpt2", f"model.checkpoint={path}", "head=causal_lm"])
    with pytest.raises(ModelError, match="is a 'bert' model, but model.family='gpt2'"):
        build_config(cfg)


def test_checkpoint_with_custom_code_is_refused(saved_tiny_bert):
    path, _ = saved_tiny_bert
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (path / "config.json").write_text(json.dumps(config))
    (path / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    cfg = compose(["model=bert", f"model.checkpoint={path}"])
    with pytest.raises(ModelError, match="never executes code from checkpoints"):
        build_config(cfg)


def test_missing_and_unreadable_checkpoints_say_what_to_do(tmp_path):
    cfg = compose(["model=bert", f"model.checkpoint={tmp_path / 'nope'}"])
    with pytest.raises(ModelError, match="is not a directory"):
        build_config(cfg)
    (tmp_path / "empty").mkdir()
    cfg = compose(["model=bert", f"model.checkpoint={tmp_path / 'empty'}"])
    with pytest.raises(ModelError, match="has no config.json"):
        build_config(cfg)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    cfg = compose(["model=bert", f"model.checkpoint={tmp_path / 'broken'}"])
    with pytest.raises(ModelError, match="cannot read"):
        build_config(cfg)


def test_offline_hub_checkpoint_fails_with_the_local_directory_fix():
    cfg = compose(["model=roberta"])
    with pytest.raises(ModelError) as info:
        build_config(cfg)
    message = str(info.value)
    assert "not reachable" in message and "model.checkpoint=DIR" in message


def test_scratch_hub_checkpoint_uses_the_family_default_offline():
    cfg = compose(["model=roberta", "model.init=scratch", "head=seqcls"])
    config = build_config(cfg)
    assert (config.hidden_size, config.max_position_embeddings, config.vocab_size) == (
        768, 514, 50265)

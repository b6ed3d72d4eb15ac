"""head.pooling: what `auto` resolves to, what validation refuses, what inspect and the
tracker see, what the freeze plan trains, and that a saved pooled model reloads and predicts
identically (the native one with plain transformers, runner's with its one-line import).
The feature cache's exactness per pooling is in test_features.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import compose, fast, tiny
from runner.config.defaults import fill_defaults
from runner.config.families import head_spec, pooling_of
from runner.config.validate import validate
from runner.data.cache import cache_root
from runner.errors import ConfigError


@pytest.mark.parametrize("overrides,expected", [
    (["model=minilm"], "mean"),  # all-MiniLM-L6-v2 was trained mean-pooled
    (["model=minilm", "model.init=scratch"], "pooler"),  # fresh weights: nothing trained
    (tiny("bert"), "pooler"),
    (tiny("roberta"), "cls"),
    (tiny("distilbert"), "cls"),
    (tiny("gpt2"), "last"),
    (["model=minilm", "head.pooling=max"], "max"),
])
def test_auto_resolves_to_the_checkpoints_own_pooling(overrides, expected):
    cfg = compose(overrides)
    pooling, why = pooling_of(cfg)
    assert pooling == expected, why
    if overrides == ["model=minilm"]:
        assert "1_Pooling/config.json" in why
    fill_defaults(cfg)  # recorded as used: MLflow params are the flattened config
    assert cfg.head.pooling == expected
    from runner.track.tracker import flat_params

    assert flat_params(cfg)["head.pooling"] == expected


def test_a_sentence_transformers_layout_with_the_model_in_a_subfolder(tmp_path):
    """Older sentence-transformers folders keep the transformer in 0_Transformer/ and
    modules.json one level up."""
    model = tmp_path / "0_Transformer"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_Transformer",
         "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
         "pooling_mode_max_tokens": True}))
    assert pooling_of(compose(["model=bert", f"model.checkpoint={model}"]))[0] == "max"


def problems_of(overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(compose(overrides))
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("overrides,expect", [
    (["head=tokencls", "head.pooling=mean"], "head=tokencls reads every token"),
    (["model=distilbert", "head.pooling=pooler"], "distilbert's sequence classifier has no "
                                                  "pooler"),
    (["model=gpt2", "head.pooling=pooler"], "set head.pooling to one of auto, cls, mean"),
    (["model=t5", "head.pooling=mean"], "only head.pooling=auto"),
    (["head.pooling=average"], "'average' is not one of auto, pooler, cls, mean, max, last"),
])
def test_impossible_poolings_are_refused_with_the_fix(overrides, expect):
    (problem,) = problems_of(overrides)
    assert problem.startswith("head.pooling") and expect in problem, problem
    assert "fix:" in problem or "set head.pooling" in problem


def test_inspect_shows_the_pooling_and_head_only_trains_the_classifier_alone():
    from runner.model.report import format_table, inspect_model

    doc = inspect_model(compose(tiny("bert", "head.pooling=mean", "freeze=head_only")))
    assert doc["model_class"] == "PooledBertForSequenceClassification"
    assert doc["pooling"] == "mean" and doc["pooling_reason"] == "head.pooling=mean"
    assert doc["trainable_parameter_names"] == ["classifier.weight", "classifier.bias"]
    assert not any(m["name"].startswith("bert.pooler") for m in doc["modules"])
    assert "pooling    mean: the mean of the token states" in format_table(doc, doc["_rows"])
    doc = inspect_model(compose(tiny("bert", "head.pooling=mean", "freeze=top_n", "freeze.n=1")))
    assert any(n.startswith("bert.encoder.layer.1.") for n in doc["trainable_parameter_names"])
    assert inspect_model(compose(tiny("bert", "head=qa")))["pooling"] is None


def test_pooling_shares_the_tokenized_features():
    """Pooling does not change tokenization: runs that differ only in it tokenize once."""
    from runner.data.load import load_data
    from runner.data.tokenizer import load_tokenizer
    from runner.tasks import task_for

    keys = set()
    for pooling in ("mean", "cls"):
        cfg = compose(fast("seqcls", "bert", f"head.pooling={pooling}"))
        raw = load_data(cfg)
        task = task_for(cfg, load_tokenizer(cfg, raw), raw.labels)
        task.features(raw)
        keys |= {p.name for p in (cache_root() / "features").iterdir()}
    assert len(keys) == 1


RELOAD = """
import json, sys
from transformers import pipeline
texts = json.loads(sys.argv[3])
def logits(model_dir):
    out = pipeline("text-classification", model=model_dir)(texts, top_k=None,
                                                             function_to_apply="none")
    return [{d["label"]: d["score"] for d in row} for row in out]
native = logits(sys.argv[1])  # plain transformers: no runner module imported
assert not any(m.startswith("runner") for m in sys.modules), "runner was imported"
import runner.model.pooled  # the documented one-liner for runner's pooled classes
print(json.dumps({"native": native, "pooled": logits(sys.argv[2])}))
"""


def in_process_logits(model_dir, texts):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    with torch.no_grad():
        for text in texts:
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
            rows.append({model.config.id2label[i]: float(v) for i, v in enumerate(logits)})
    return type(model).__name__, rows


def test_saved_models_reload_and_predict_identically(tmp_path):
    from runner.model.build import build_config, build_model
    from runner.run import run

    dirs = {}
    for name, pooling in (("native", "auto"), ("pooled", "mean")):
        run(compose(fast("seqcls", "bert", f"head.pooling={pooling}", "logger=none",
                         "trainer.max_epochs=1", f"trainer.output_dir={tmp_path / name}")))
        dirs[name] = tmp_path / name / "model"
    saved = json.loads((dirs["pooled"] / "config.json").read_text())
    assert (saved["model_type"], saved["pooling"]) == ("runner_pooled_bert", "mean")
    texts = ["a wonderful, moving film", "dull", "not bad at all, really"]
    result = subprocess.run([sys.executable, "-c", RELOAD, str(dirs["native"]),
                             str(dirs["pooled"]), json.dumps(texts)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    for name, expected_class in (("native", "BertForSequenceClassification"),
                                 ("pooled", "PooledBertForSequenceClassification")):
        model_class, expected = in_process_logits(dirs[name], texts)
        assert model_class == expected_class
        for got, want in zip(reloaded[name], expected, strict=True):
            assert got.keys() == want.keys()
            assert all(got[k] == pytest.approx(want[k], abs=1e-5) for k in want), (got, want)
    # runner continues from its own saved model with the pooling it was trained with
    cfg = compose(["model=bert", f"model.checkpoint={dirs['pooled']}"])
    assert pooling_of(cfg)[0] == "mean" and "saved by runner" in pooling_of(cfg)[1]
    assert head_spec(cfg).model_class == "PooledBertForSequenceClassification"
    model = build_model(cfg, build_config(cfg)).eval()
    _, expected = in_process_logits(dirs["pooled"], texts[:1])
    from transformers import AutoTokenizer

    with torch.no_grad():
        logits = model(**AutoTokenizer.from_pretrained(dirs["pooled"])(
            texts[0], return_tensors="pt")).logits[0]
    assert [float(v) for v in logits] == pytest.approx(list(expected[0].values()), abs=1e-6)


def test_native_poolings_cache_what_the_registry_says():
    """A family's native pooling maps to the cache kind its registry entry names."""
    from runner.config.families import FAMILIES
    from runner.config.tasks import TASKS
    from runner.train.body_cache import POOLING_KINDS

    for name, family in FAMILIES.items():
        spec = family.heads.get("seqcls")
        if spec is not None and spec.pooling:
            assert POOLING_KINDS[spec.pooling] == TASKS["seqcls"].body_cache[name], name


def test_pooled_regression_uses_the_usual_mse_loss():
    from runner.model.build import build_config, build_model

    cfg = compose(tiny("roberta", "head.pooling=mean", "head.regression=true"))
    model = build_model(cfg, build_config(cfg)).eval()
    ids = torch.randint(3, 90, (3, 6))
    mask = torch.ones_like(ids)
    mask[0, 3:] = 0
    labels = torch.tensor([0.5, -1.0, 2.0])
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, 1)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits[:, 0], labels))

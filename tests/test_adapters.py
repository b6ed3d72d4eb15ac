"""Adapters (freeze=lora | dora | ia3, through peft) as freezing strategies.

Counts are checked against formulas written here from the tiny architectures (conftest.TINY),
independently of runner's family table: for every family x head pair and every method.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import compose, fast, mlflow_runs, run_cli, tiny
from runner.config.families import FAMILIES, family_of, head_spec
from runner.errors import ConfigError, FreezeError
from runner.model.adapters import add_adapters, remove_adapters
from runner.model.build import build_config, build_model
from runner.model.freeze import apply_plan, plan_for_model

PAIRS = [(f, h) for f, spec in FAMILIES.items() for h in spec.heads]
METHODS = ("lora", "dora", "ia3")
R = 4  # freeze.r in these tests (the default 8 would do too)
H, L, FF, V, LABELS = 32, 2, 37, 99, 3  # conftest.TINY: hidden, blocks, feed-forward, vocab


def modules(family: str, head: str, method: str) -> list[tuple[int, int, bool]]:
    """(in features, out features, feed-forward) of every adapted module, read off the
    architectures: LoRA/DoRA on the query and value projections; IA3 on keys, values and
    the feed-forward output (BERT-like: also the attention output, peft's 'output.dense')."""
    t5_stacks = 1 if head == "tokencls" else 3  # encoder self; decoder self + cross
    if method != "ia3":
        return {"gpt2": [(H, 3 * H, False)] * L,  # c_attn: query, key and value at once
                "t5": [(H, H, False)] * (2 * L * t5_stacks)}.get(family, [(H, H, False)] * 2 * L)
    return {
        "bert": [(H, H, False), (H, H, False), (H, H, True), (FF, H, True)] * L,
        "roberta": [(H, H, False), (H, H, False), (H, H, True), (FF, H, True)] * L,
        "distilbert": [(H, H, False), (H, H, False), (FF, H, True)] * L,
        "gpt2": [(H, 3 * H, False), (4 * H, H, True)] * L,
        "t5": [(H, H, False)] * (2 * L * t5_stacks) + [(FF, H, True)] * 2 * L
        if t5_stacks == 3 else [(H, H, False)] * 2 * L + [(FF, H, True)] * L,
    }[family]


def adapter_count(family: str, head: str, method: str) -> int:
    total = 0
    for fan_in, fan_out, feedforward in modules(family, head, method):
        if method == "ia3":  # one scale per input (feed-forward) or output feature
            total += fan_in if feedforward else fan_out
        else:  # A: r x in, B: out x r; DoRA adds a magnitude per output feature
            total += R * (fan_in + fan_out) + (fan_out if method == "dora" else 0)
    return total


def head_count(family: str, head: str) -> int:
    """The head's trainable parameters (a head tied to the embeddings stays frozen)."""
    linear = {"seqcls": H * LABELS + LABELS, "tokencls": H * LABELS + LABELS,
              "qa": H * 2 + 2}
    dense = H * H + H
    if head == "causal_lm":  # the decoder matrix is the embeddings'; its bias trains
        return 0 if family == "gpt2" else dense + 2 * H + V
    if head == "seq2seq":
        return 0  # T5's lm_head is tied to the shared embeddings
    if head == "seqcls":
        return {"bert": linear["seqcls"], "gpt2": H * LABELS,  # GPT-2's score has no bias
                "roberta": dense + linear["seqcls"], "distilbert": dense + linear["seqcls"],
                "t5": dense + linear["seqcls"]}[family]
    return linear[head]


def adapted(family: str, head: str, method: str, *extra: str):
    cfg = compose(tiny(family, f"head={head}", f"head.num_labels={LABELS}",
                       f"freeze={method}", *extra,
                       *([f"freeze.r={R}", "freeze.alpha=8"] if method != "ia3" else [])))
    torch.manual_seed(0)
    model = build_model(cfg, build_config(cfg), None)
    adapters = add_adapters(model, family_of(cfg), head_spec(cfg), cfg.freeze)
    return cfg, model, adapters


@pytest.mark.parametrize("family,head", PAIRS)
def test_every_pair_and_method_trains_adapters_and_head_counted_once(family, head):
    for method in METHODS:
        cfg, model, adapters = adapted(family, head, method)
        plan = plan_for_model(model, family_of(cfg), head_spec(cfg), cfg.freeze, adapters)
        want_adapters = adapter_count(family, head, method)
        assert adapters.parameters == want_adapters, method
        assert plan.trainable == want_adapters + head_count(family, head), method
        assert plan.total == sum(p.numel() for p in model.parameters())  # once, ties too
        apply_plan(model, plan)
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        heads = head_spec(cfg).head_modules
        assert all(n in adapters.rules or n.split(".")[0] in heads for n in trainable)
        assert plan.adapters["parameters"] == want_adapters
        how = f"r={R}, alpha=8" if method != "ia3" else "scaling vector"
        assert {d.rule for d in plan.decisions if d.param.name in adapters.rules} == {
            f"{method} adapter ({how}) on target {t!r}" for t in adapters.settings["targets"]}


def test_bert_base_lora_trains_297219_adapter_and_classifier_parameters():
    """The issue's own numbers: 12 x 2 x 8 x (768 + 768) adapters + 2,307 head."""
    from runner.model.report import inspect_model

    doc = inspect_model(compose(["model=bert", "model.init=scratch", "head=seqcls",
                                 "head.num_labels=3", "freeze=lora"]))
    assert doc["params"]["trainable"] == 12 * 2 * 8 * (768 + 768) + 2_307 == 297_219
    assert doc["freeze"]["adapters"]["parameters"] == 294_912
    names = doc["trainable_parameter_names"]
    assert all(".lora_A." in n or ".lora_B." in n or n.startswith("classifier.") for n in names)


def test_adapters_combine_with_trainable_patterns():
    cfg, model, adapters = adapted("bert", "seqcls", "lora", "freeze.trainable=[LayerNorm]")
    plan = plan_for_model(model, family_of(cfg), head_spec(cfg), cfg.freeze, adapters)
    norms = (1 + 2 * L) * 2 * H  # embeddings' and two per block: weight and bias
    assert plan.trainable == adapter_count("bert", "seqcls", "lora") + head_count(
        "bert", "seqcls") + norms
    rules = {d.rule for d in plan.decisions if "LayerNorm" in d.param.name}
    assert rules == {"custom trainable /LayerNorm/"}


@pytest.mark.parametrize("family,method", [("bert", "lora"), ("gpt2", "dora"), ("t5", "ia3"),
                                           ("distilbert", "lora")])
def test_merging_keeps_the_outputs_and_the_plain_parameter_names(family, method):
    head = {"t5": "seq2seq", "gpt2": "causal_lm"}.get(family, "seqcls")
    cfg, model, adapters = adapted(family, head, method)
    plain = {n for n, _ in build_model(cfg, build_config(cfg), None).named_parameters()}
    with torch.no_grad():  # adapters start as the identity: move them away from it
        for name, p in model.named_parameters():
            if name in adapters.rules:
                p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    batch = {"input_ids": torch.randint(3, V, (2, 7)),
             "attention_mask": torch.ones(2, 7, dtype=torch.long)}
    if head == "seq2seq":
        batch["decoder_input_ids"] = torch.randint(3, V, (2, 5))
    before = model(**batch).logits
    remove_adapters(model, merge=True)
    assert {n for n, _ in model.named_parameters()} == plain
    torch.testing.assert_close(model(**batch).logits, before, rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("overrides,key", [
    (["freeze=lora", "freeze.r=0"], "freeze.r"),
    (["freeze=dora", "freeze.dropout=1.5"], "freeze.dropout"),
    (["freeze=ia3", "freeze.r=4"], "freeze.r"),
    (["freeze=ia3", "freeze.targets=[key]", "freeze.feedforward=[wo]"], "freeze.feedforward"),
    (["freeze=head_only", "freeze.r=4"], "freeze.r"),
    (["freeze=lora", "freeze.targets=[]"], "freeze.targets"),
])
def test_bad_adapter_settings_are_config_errors(overrides, key):
    from runner.config.validate import validate

    with pytest.raises(ConfigError) as err:
        validate(compose(tiny("bert", *overrides)))
    assert [p.key for p in err.value.problems] == [key]


def test_unknown_target_names_what_exists():
    with pytest.raises(FreezeError, match=r"'qkv' names no module.*query, .*value"):
        adapted("bert", "seqcls", "lora", "freeze.targets=[qkv]")


def test_a_target_in_the_head_is_refused():
    with pytest.raises(FreezeError, match=r"matches the task head \(classifier\)"):
        adapted("bert", "seqcls", "lora", "freeze.targets=[query,classifier]")


def test_a_module_peft_cannot_adapt_is_a_freeze_error():
    with pytest.raises(FreezeError, match=r"freeze=ia3 cannot adapt .*peft says"):
        adapted("bert", "seqcls", "ia3", "freeze.targets=[LayerNorm]")


def test_bad_rank_exits_2_from_the_command_line():
    result = run_cli(*tiny("bert"), "freeze=lora", "freeze.r=-1", module="runner.inspect")
    assert result.returncode == 2
    assert "freeze.r: -1 must be a rank > 0" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ training and saving


def train(tmp_path: Path, name: str, *extra: str) -> Path:
    from runner.run import run

    out = tmp_path / name
    run(compose([*fast("seqcls", "bert", "freeze=lora", "trainer.max_epochs=1",
                       "trainer.lr=1e-2", *extra),
                 f"trainer.output_dir={out}",
                 f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"]))
    return out / "model"


def test_merged_and_peft_saved_models_load_and_agree(tmp_path):
    from peft import PeftConfig, PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification, pipeline

    merged = train(tmp_path, "merged")
    unmerged = train(tmp_path, "unmerged", "freeze.merge=false")
    assert not (merged / "adapter_config.json").exists()
    assert (unmerged / "adapter_model.safetensors").is_file()
    texts = ["a wonderful film", "dull and slow"]
    classify = pipeline("text-classification", model=str(merged), top_k=None)
    from_pipeline = classify(texts)

    # As the README shows: the base named in adapter_config.json, with this model's config.
    base = AutoModelForSequenceClassification.from_pretrained(
        PeftConfig.from_pretrained(unmerged).base_model_name_or_path,
        config=AutoConfig.from_pretrained(unmerged))
    model = PeftModel.from_pretrained(base, unmerged).eval()
    again = pipeline("text-classification", model=model.merge_and_unload(),
                     tokenizer=classify.tokenizer, top_k=None)(texts)
    for a, b in zip(from_pipeline, again, strict=True):
        assert [x["label"] for x in a] == [x["label"] for x in b]
        for x, y in zip(a, b, strict=True):
            assert abs(x["score"] - y["score"]) < 1e-5

    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    record = next(r for r in runs if r.data.params["freeze.merge"] == "True")
    assert record.data.params["freeze.targets"] == '["query", "value"]'
    assert record.data.params["freeze.r"] == "8"
    path = client.download_artifacts(record.info.run_id, "freeze/adapters.json", str(tmp_path))
    assert json.loads(Path(path).read_text())["parameters"] == 2 * L * 8 * (H + H)
    path = client.download_artifacts(record.info.run_id, "freeze/parameters.tsv", str(tmp_path))
    rows = [line.split("\t") for line in Path(path).read_text().splitlines()[1:]]
    assert sum(1 for r in rows if r[3].startswith("lora adapter")) == 2 * L * 2


@pytest.mark.parametrize("family,head,method", [("gpt2", "causal_lm", "ia3"),
                                                ("t5", "seq2seq", "dora")])
def test_other_heads_train_adapters_and_save_a_plain_model(tmp_path, family, head, method):
    from safetensors import safe_open

    from runner.run import run

    out = tmp_path / "run"
    run(compose([*fast(head, family, f"freeze={method}", "trainer.max_epochs=1"),
                 f"trainer.output_dir={out}", "logger=none"]))
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "FINISHED" and info["metrics"]["eval/loss"] > 0
    with safe_open(out / "model" / "model.safetensors", "pt") as saved:
        names = list(saved.keys())
    assert names and not [n for n in names if "ia3_" in n or "lora_" in n or "base_layer" in n]


def test_default_targets_are_peft_s_own_where_peft_has_them():
    from peft.utils import constants

    for name, family in FAMILIES.items():
        lora = constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(name)
        ia3 = constants.TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING.get(name)
        feedforward = constants.TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(name)
        assert lora is None or list(family.lora_targets) == lora, name
        assert ia3 is None or list(family.ia3_targets) == ia3, name
        assert feedforward is None or list(family.ia3_feedforward) == feedforward, name
    assert "distilbert" not in constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

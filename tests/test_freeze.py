"""Every freeze strategy on every family x head yields exactly the expected trainable set.

The expectations are derived here from the transformers parameter names, independently of
runner's family table, and compared with both the plan and the model after apply_plan.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from conftest import compose, tiny
from runner.config.families import family_of, head_spec
from runner.errors import FreezeError
from runner.model.build import build_config, build_model
from runner.model.freeze import apply_plan, plan_for_model

# Independent description of each model's layout, read off the transformers module names.
BERT_LIKE = {"emb": ["{b}.embeddings."], "blocks": ["{b}.encoder.layer."],
             "above": ["{b}.pooler."]}
LAYOUT = {
    "bert": {**BERT_LIKE, "body": "bert",
             "heads": {"seqcls": ["classifier."], "causal_lm": ["cls."],
                       "qa": ["qa_outputs."], "tokencls": ["classifier."]}},
    "roberta": {**BERT_LIKE, "body": "roberta",
                "heads": {"seqcls": ["classifier."], "causal_lm": ["lm_head."],
                          "qa": ["qa_outputs."], "tokencls": ["classifier."]}},
    "distilbert": {"body": "distilbert", "emb": ["{b}.embeddings."],
                   "blocks": ["{b}.transformer.layer."], "above": [],
                   "heads": {"seqcls": ["pre_classifier.", "classifier."],
                             "qa": ["qa_outputs."], "tokencls": ["classifier."]}},
    "gpt2": {"body": "transformer", "emb": ["{b}.wte.", "{b}.wpe."], "blocks": ["{b}.h."],
             "above": ["{b}.ln_f."],
             "heads": {"seqcls": ["score."], "causal_lm": ["lm_head."],
                       "qa": ["qa_outputs."], "tokencls": ["classifier."]}},
    "t5": {"body": "transformer", "emb": ["{b}shared."],
           "blocks": ["{b}encoder.block.", "{b}decoder.block."],
           "above": ["{b}encoder.final_layer_norm.", "{b}decoder.final_layer_norm."],
           "heads": {"seqcls": ["classification_head."], "seq2seq": ["lm_head."],
                     "qa": ["qa_outputs."], "tokencls": ["classifier."]}},
}
T5_BODY = {"seqcls": "transformer.", "seq2seq": "", "qa": "", "tokencls": "transformer."}
NORM_MARKERS = (".LayerNorm.", "layer_norm", ".ln_", "final_layer_norm")
PAIRS = [(f, h) for f, spec in LAYOUT.items() for h in spec["heads"]]


def expand(family: str, head: str, key: str) -> list[str]:
    spec = LAYOUT[family]
    body = T5_BODY[head] if family == "t5" else spec["body"]
    return [p.format(b=body) for p in spec[key]]


def tensors(model) -> list[tuple[str, ...]]:
    """All names of each distinct tensor, canonical first (ground truth from torch)."""
    names = defaultdict(list)
    for name, tensor in model.named_parameters(remove_duplicate=False):
        names[id(tensor)].append(name)
    return [tuple(v) for v in names.values()]


def block_index(name: str, stacks: list[str]) -> tuple[str, int] | None:
    for stack in stacks:
        m = re.match(re.escape(stack) + r"(\d+)\.", name)
        if m:
            return stack, int(m.group(1))
    return None


def expected(model, family: str, head: str, strategy: str, n: int = 1) -> set[str]:
    heads = LAYOUT[family]["heads"][head]
    emb, stacks, above = (expand(family, head, k) for k in ("emb", "blocks", "above"))
    if family == "t5" and head == "tokencls":
        stacks, above = stacks[:1], above[:1]
    counts = defaultdict(int)
    for names in tensors(model):
        for name in names:
            if pos := block_index(name, stacks):
                counts[pos[0]] = max(counts[pos[0]], pos[1] + 1)

    def any_starts(names, prefixes):
        return any(nm.startswith(tuple(prefixes)) for nm in names)

    def rule(names) -> bool:
        in_head = any_starts(names, heads)
        positions = [p for nm in names if (p := block_index(nm, stacks))]
        if strategy == "none":
            return True
        if strategy == "head_only":
            return in_head
        if strategy == "embeddings":
            return not any_starts(names, emb)
        if strategy == "bottom_n":
            return not any_starts(names, emb) and not any(i < n for _, i in positions)
        if strategy == "top_n":
            top = any(i >= counts[s] - n for s, i in positions)
            return in_head or top or any_starts(names, above)
        if strategy == "bitfit":
            return in_head or any(nm.endswith(".bias") for nm in names)
        if strategy == "layernorm":
            return in_head or any(m in nm for nm in names for m in NORM_MARKERS)
        if strategy == "encoder":
            return not any("encoder." in nm for nm in names)
        raise AssertionError(strategy)

    return {names[0] for names in tensors(model) if rule(names)}


@pytest.fixture(scope="module")
def models():
    built = {}
    for family, head in PAIRS:
        cfg = compose(tiny(family, f"head={head}"))
        built[family, head] = (cfg, build_model(cfg, build_config(cfg)))
    return built


STRATEGIES = ["none", "head_only", "embeddings", "bottom_n", "top_n", "bitfit", "layernorm"]


@pytest.mark.parametrize("family,head", PAIRS)
def test_every_strategy_gives_the_expected_trainable_set(models, family, head):
    cfg, model = models[family, head]
    strategies = STRATEGIES + (["encoder"] if family == "t5" and head != "tokencls" else [])
    for strategy in strategies:
        freeze = compose([*tiny(family, f"head={head}"), f"freeze={strategy}", "freeze.n=1"])
        plan = plan_for_model(model, family_of(cfg), head_spec(cfg), freeze.freeze)
        want = expected(model, family, head, strategy)
        assert set(plan.trainable_names) == want, (strategy, set(plan.trainable_names) ^ want)
        apply_plan(model, plan)
        got = {n for n, p in model.named_parameters() if p.requires_grad}
        assert got == want, strategy
        total = sum(p.numel() for p in model.parameters())
        assert plan.total == total  # tied tensors counted once
        assert plan.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def plan_of(models, family, head, *overrides):
    cfg, model = models[family, head]
    freeze = compose([*tiny(family, f"head={head}"), *overrides])
    return plan_for_model(model, family_of(cfg), head_spec(cfg), freeze.freeze)


def test_tied_lm_head_is_one_tensor_trained_by_head_only(models):
    plan = plan_of(models, "gpt2", "causal_lm", "freeze=head_only")
    assert plan.trainable_names == ["transformer.wte.weight"]
    assert any("lm_head.weight" in note and "tied" in note for note in plan.notes)
    plan = plan_of(models, "gpt2", "causal_lm", "freeze=embeddings")
    assert "transformer.wte.weight" not in plan.trainable_names


def test_t5_encoder_strategy_freezes_the_shared_embedding(models):
    plan = plan_of(models, "t5", "seq2seq", "freeze=encoder")
    names = set(plan.trainable_names)
    assert "shared.weight" not in names
    assert any(n.startswith("decoder.block.") for n in names)
    assert not any(n.startswith("encoder.") for n in names)


def test_custom_patterns_frozen_wins_over_trainable(models):
    plan = plan_of(models, "bert", "seqcls", "freeze=custom",
                   "freeze.trainable=[classifier,'encoder\\.layer']",
                   "freeze.frozen=['encoder\\.layer\\.0\\.']")
    names = set(plan.trainable_names)
    assert "classifier.weight" in names
    assert any(n.startswith("bert.encoder.layer.1.") for n in names)
    assert not any(n.startswith("bert.encoder.layer.0.") for n in names)
    assert not any(n.startswith("bert.embeddings.") for n in names)


def test_custom_pattern_matching_nothing_names_it_and_shows_examples(models):
    with pytest.raises(FreezeError) as info:
        plan_of(models, "bert", "seqcls", "freeze=custom",
                "freeze.trainable=[nothing_matches_this]")
    message = str(info.value)
    assert "'nothing_matches_this' matches no parameter" in message
    assert "bert.embeddings.word_embeddings.weight" in message


def test_nothing_trainable_is_an_error(models):
    with pytest.raises(FreezeError, match="leaves nothing to train"):
        plan_of(models, "bert", "seqcls", "freeze=custom", "freeze.frozen=['.']")


def test_freeze_n_larger_than_the_blocks_gives_the_count(models):
    with pytest.raises(FreezeError, match="more than the model has blocks.*: 2"):
        plan_of(models, "bert", "seqcls", "freeze=bottom_n", "freeze.n=3")


def test_plan_records_why_each_tensor_was_decided(models):
    plan = plan_of(models, "bert", "seqcls", "freeze=bottom_n", "freeze.n=1")
    rules = {d.param.name: d.rule for d in plan.decisions}
    assert rules["bert.embeddings.word_embeddings.weight"] == "embeddings"
    assert "bottom 1 blocks" in rules["bert.encoder.layer.0.attention.self.query.weight"]
    assert rules["classifier.weight"] == "above the bottom blocks"

"""Every config option composes and validates; bad config is reported all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, compose, run_cli
from runner.config.validate import validate
from runner.errors import ConfigError

CONF = REPO / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_have_their_options():
    assert options("model") == ["bert", "distilbert", "gpt2", "minilm", "roberta", "t5"]
    assert options("head") == ["causal_lm", "qa", "seq2seq", "seqcls", "tokencls"]
    assert options("freeze") == ["bitfit", "bottom_n", "custom", "dora", "embeddings",
                                 "encoder", "gradual", "head_only", "ia3", "layernorm", "lora",
                                 "none", "top_n"]
    assert options("data") == ["hub", "local", "sample"]
    assert options("logger") == ["mlflow", "none"]


@pytest.mark.parametrize("model", options("model"))
def test_every_model_composes_and_validates(model):
    cfg = compose([f"model={model}"])
    validate(cfg)
    assert cfg.model.family in ("bert", "distilbert", "roberta", "gpt2", "t5")


def test_minilm_checkpoint_resolves_to_the_installed_package():
    cfg = compose(["model=minilm"])
    path = Path(cfg.model.checkpoint)
    assert path.name == "model" and (path / "model.safetensors").is_file()


SUPPORTED_HEADS = {"bert": ["seqcls", "causal_lm", "qa", "tokencls"],
                   "t5": ["seqcls", "seq2seq", "qa", "tokencls"]}


@pytest.mark.parametrize("model,head", [(m, h) for m, hs in SUPPORTED_HEADS.items() for h in hs])
def test_every_head_composes_and_validates(model, head):
    validate(compose([f"model={model}", f"head={head}"]))


@pytest.mark.parametrize("freeze", options("freeze"))
def test_every_freeze_strategy_composes_and_validates(freeze):
    extra = {"bottom_n": ["freeze.n=1"], "top_n": ["freeze.n=1"],
             "custom": ["freeze.trainable=[classifier]"]}.get(freeze, [])
    model = "model=t5" if freeze == "encoder" else "model=minilm"
    head = "head=seq2seq" if freeze == "encoder" else "head=seqcls"
    cfg = compose([model, head, f"freeze={freeze}", *extra])
    validate(cfg)
    assert cfg.freeze.strategy == freeze


@pytest.mark.parametrize("data", options("data"))
def test_every_data_source_composes(data):
    extra = {"local": ["data.train_file=x.csv"], "hub": ["data.hub_name=glue"]}.get(data, [])
    validate(compose([f"data={data}", *extra]))


@pytest.mark.parametrize("logger", options("logger"))
def test_every_logger_composes(logger):
    validate(compose([f"logger={logger}"]))


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "experiments").glob("*.yaml")))
def test_every_experiment_preset_composes(name):
    validate(compose([f"experiment={name}"]))


def test_config_overrides_accept_new_keys_with_plus():
    cfg = compose(["model=bert", "model.init=scratch",
                   "+model.config_overrides.num_attention_heads=8"])
    validate(cfg)
    assert cfg.model.config_overrides.num_attention_heads == 8


def problems_of(overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(compose(overrides))
    return [str(p) for p in info.value.problems]


def test_all_problems_are_reported_at_once():
    found = problems_of(["model.init=scratchy", "trainer.lr=-1", "freeze=encoder",
                         "head.num_labels=0"])
    text = "\n".join(found)
    assert len(found) == 4, text
    assert "model.init: 'scratchy' is not one of pretrained, scratch" in text
    assert "trainer.lr" in text and "freeze.strategy" in text and "head.num_labels" in text


def test_unsupported_family_head_pair_lists_the_supported_pairs():
    (problem,) = problems_of(["model=bert", "head=seq2seq"])
    assert "no seq2seq model for the bert family" in problem
    assert "t5: seqcls, seq2seq, qa, tokencls" in problem


def test_heads_must_divide_hidden_size_naming_both():
    (problem,) = problems_of(["model=bert", "model.init=scratch",
                              "+model.config_overrides.num_attention_heads=7"])
    assert "768" in problem and "7" in problem
    assert "model.config_overrides.num_attention_heads" in problem


def test_t5_heads_need_not_divide_d_model():
    validate(compose(["model=t5", "model.init=scratch", "head=seq2seq",
                      "+model.config_overrides.num_heads=7"]))


def test_shape_changing_override_on_pretrained_says_use_scratch():
    (problem,) = problems_of(["model=minilm", "+model.config_overrides.num_hidden_layers=2"])
    assert "num_hidden_layers" in problem and "model.init=scratch" in problem


def test_non_architecture_override_on_pretrained_is_fine():
    validate(compose(["model=minilm", "+model.config_overrides.hidden_dropout_prob=0.2"]))


def test_negative_size_override_is_rejected():
    (problem,) = problems_of(["model=bert", "model.init=scratch",
                              "+model.config_overrides.num_hidden_layers=-2"])
    assert "must be a positive number" in problem


def test_freeze_n_is_required_and_bounded():
    (problem,) = problems_of(["freeze=bottom_n"])
    assert "freeze.n" in problem and "freeze.n=2" in problem
    (problem,) = problems_of(["freeze=top_n", "freeze.n=7"])  # minilm has 6 layers
    assert "7 is more than the model's 6 blocks" in problem


def test_custom_freeze_needs_a_valid_pattern():
    (problem,) = problems_of(["freeze=custom"])
    assert "at least one pattern" in problem
    (problem,) = problems_of(["freeze=custom", "freeze.trainable=['(unclosed']"])
    assert "not a valid regular expression" in problem


def test_max_length_beyond_positions_is_rejected():
    (problem,) = problems_of(["data.max_length=1000"])
    assert "512 positions" in problem


def test_objective_must_be_a_metric_of_the_head():
    (problem,) = problems_of(["trainer.objective=eval/acuracy"])
    assert "trainer.objective" in problem and "eval/accuracy" in problem
    (problem,) = problems_of(["head.regression=true", "trainer.objective=eval/accuracy"])
    assert "eval/mse" in problem
    validate(compose(["head.regression=true", "trainer.objective=eval/mse"]))
    validate(compose(["model=t5", "head=seq2seq", "trainer.objective=eval/bleu"]))


def test_fp16_without_a_gpu_is_refused_up_front():
    (problem,) = problems_of(["trainer.mixed_precision=fp16", "trainer.cpu=true"])
    assert "fp16 needs a GPU" in problem and "bf16" in problem


def test_qa_doc_stride_must_be_smaller_than_max_length():
    (problem,) = problems_of(["head=qa", "data.max_length=64", "head.doc_stride=64"])
    assert "head.doc_stride" in problem and "data.max_length=64" in problem
    validate(compose(["head=qa", "data.max_length=64", "head.doc_stride=16"]))


def test_misspelled_key_fails_with_the_full_key():
    result = run_cli("trainer.learning_rate=0.1", "--cfg", "job")
    assert result.returncode != 0
    assert "trainer.learning_rate" in result.stderr


def test_wrong_type_fails_naming_the_key():
    result = run_cli("trainer.batch_size=lots", "--cfg", "job")
    assert result.returncode != 0
    assert "batch_size" in result.stderr and "lots" in result.stderr


def test_unknown_option_lists_the_options():
    result = run_cli("model=bogus", module="runner.inspect")
    assert result.returncode == 2
    assert "Could not find 'model/bogus'" in result.stderr
    assert "minilm" in result.stderr


def test_validation_errors_exit_2_without_a_traceback():
    result = run_cli("model=bert", "head=seq2seq", "logger=none")
    assert result.returncode == 2
    assert result.stderr.startswith("error: the configuration has 1 problem")
    assert "Traceback" not in result.stderr

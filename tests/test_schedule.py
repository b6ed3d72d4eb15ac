"""Layer-wise learning rates and gradual unfreezing (freeze=gradual): the groups and their
rates, the stages' plans, what a staged run leaves in MLflow and in its optimizer, and the
config errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import compose, fast, mlflow_runs, run_cli, tiny
from runner.config.families import family_of, head_spec
from runner.config.validate import validate
from runner.errors import ConfigError, FreezeError
from runner.model.report import inspect_model
from runner.model.stages import plan_stages
from runner.run import run


def test_layerwise_groups_decay_from_the_top_block_down_to_the_embeddings():
    cfg = compose(tiny("bert", "head=seqcls", "head.num_labels=2", "freeze=none",
                       "trainer.lr=1e-3", "trainer.head_lr=1e-2", "trainer.layer_lr_decay=0.5"))
    doc = inspect_model(cfg)
    rates = {g["name"]: g["lr"] for g in doc["lr_groups"]}
    assert rates == pytest.approx({"head": 1e-2, "top": 1e-3, "block.1": 1e-3, "block.0": 5e-4,
                                   "embeddings": 2.5e-4})
    assert sum(g["params"] for g in doc["lr_groups"]) == doc["params"]["trainable"]
    assert [g["name"] for g in doc["lr_groups"]] == list(rates)  # highest rate first


def test_t5_has_one_ladder_per_stack_and_its_tied_lm_head_is_the_head():
    cfg = compose(tiny("t5", "head=seq2seq", "freeze=none", "trainer.lr=1e-3",
                       "trainer.layer_lr_decay=0.5"))
    rates = {g["name"]: g["lr"] for g in inspect_model(cfg)["lr_groups"]}
    assert rates == pytest.approx({
        "head": 1e-3, "top": 1e-3, "decoder.block.1": 1e-3, "encoder.block.1": 1e-3,
        "decoder.block.0": 5e-4, "encoder.block.0": 5e-4})  # `shared` is lm_head's tensor


def test_every_stage_is_planned_and_checked_before_training_and_errors_name_the_stage():
    from runner.model.build import build_config, build_model

    cfg = compose(tiny("bert", "head=seqcls", "head.num_labels=2", "freeze=gradual",
                       "freeze.every=2", "trainer.max_epochs=8"))
    model = build_model(cfg, build_config(cfg), None)
    stages = plan_stages(model, family_of(cfg), head_spec(cfg), cfg.freeze)
    assert [(s.at_epoch, s.settings.strategy, s.settings.n) for s in stages] == [
        (0, "head_only", None), (2, "top_n", 1), (4, "top_n", 2), (6, "none", None)]
    counts = [s.plan.trainable for s in stages]
    assert counts == sorted(counts) and counts[-1] == stages[-1].plan.total

    cfg = compose(tiny("bert", "head=seqcls", "head.num_labels=2", "freeze=gradual",
                       "freeze.stages=[{at_epoch:0,strategy:head_only},"
                       "{at_epoch:1,strategy:top_n,n:5}]"))
    with pytest.raises(FreezeError, match=r"stage 1 \(at_epoch 1, strategy top_n\).*freeze.n=5"):
        plan_stages(model, family_of(cfg), head_spec(cfg), cfg.freeze)


BAD = [
    (["freeze.stages=[{at_epoch:0,strategy:head_only},{at_epoch:2,strategy:none},"
      "{at_epoch:1,strategy:bitfit}]"], "freeze.stages[2].at_epoch", "sorted"),
    (["freeze.stages=[{at_epoch:0,strategy:head_only},{at_epoch:0,strategy:none}]"],
     "freeze.stages[1].at_epoch", "two stages"),
    (["freeze.stages=[{at_epoch:0,strategy:head_only},{at_epoch:1,strategy:lots}]"],
     "freeze.stages[1].strategy", "'lots' is not one of"),
    (["freeze.stages=[{at_epoch:0,strategy:head_only},{at_epoch:3,strategy:none}]"],
     "freeze.stages[1].at_epoch", "never reached"),
    (["freeze.stages=[{at_epoch:1,strategy:none}]"], "freeze.stages[0].at_epoch", "start"),
    (["freeze.stages=[{at_epoch:0,strategy:top_n}]"], "freeze.stages[0].n", "needs"),
    (["trainer.layer_lr_decay=1.5"], "trainer.layer_lr_decay", "(0, 1]"),
    (["trainer.layer_lr_decay=0"], "trainer.layer_lr_decay", "(0, 1]"),
    (["trainer.head_lr=0"], "trainer.head_lr", "> 0"),
    (["freeze.every=0"], "freeze.every", ">= 1"),
]


@pytest.mark.parametrize("overrides,key,message", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_schedules_are_config_errors_naming_the_key(overrides, key, message):
    cfg = compose(["freeze=gradual", "trainer.max_epochs=3", *overrides])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert [p for p in err.value.problems if p.key == key and message in p.message], \
        err.value.problems


def test_stages_without_gradual_and_a_bad_stage_on_the_command_line_exit_2(tmp_path):
    done = run_cli("freeze=head_only", "freeze.stages=[{at_epoch:0,strategy:none}]",
                   "trainer.layer_lr_decay=2", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "freeze.stages" in done.stderr and "trainer.layer_lr_decay" in done.stderr
    assert "Traceback" not in done.stderr


def test_gradual_run_grows_its_trainable_count_per_stage_with_layerwise_rates(tmp_path, caplog):
    """The issue's done-when on a tiny BERT: 2 blocks, 3 epochs of 6 steps."""
    out = tmp_path / "run"
    cfg = compose(fast("seqcls", "bert", "freeze=gradual", "trainer.max_epochs=3",
                       "trainer.layer_lr_decay=0.8", "trainer.lr=1e-3", "trainer.log_every=2",
                       f"trainer.output_dir={out}", "trainer.keep_checkpoints=3",
                       f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"))
    with caplog.at_level("INFO"):
        run(cfg)
    client, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    run_id = record.info.run_id
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id,
                                                                           "params/trainable"))
    assert [step for step, _ in history] == [0, 6, 12]  # the first step of each epoch
    assert [v for _, v in history] == sorted({v for _, v in history})  # grows at each stage
    lr_keys = [k for k in record.data.metrics if k.startswith("train/lr/")]
    first_logged = {k: client.get_metric_history(run_id, k)[0].value for k in lr_keys}
    assert len(set(first_logged.values())) >= 3, first_logged  # (the last are 0: linear decay)
    # the schedule (linear decay) scales every group: the ratios stay at each logged step
    top = {m.step: m.value for m in client.get_metric_history(run_id, "train/lr/block.1")}
    below = {m.step: m.value for m in client.get_metric_history(run_id, "train/lr/block.0")}
    assert len(top) == 9 and len(set(top.values())) == 9
    assert all(math.isclose(below[s] / top[s], 0.8, rel_tol=1e-9) for s in top if top[s])
    artifacts = {a.path for a in client.list_artifacts(run_id, "freeze/stages/2")}
    assert "freeze/stages/2/plan.csv" in artifacts
    log = caplog.text
    assert "frozen-body feature cache: computed" in log and "no longer used" in log

    # Tensors joined at their stage, the earlier ones kept their state: AdamW's step count
    # per tensor is the number of steps it has trained.
    optimizer = torch.load(out / "checkpoints" / "step-00000018" / "optimizer.bin",
                           weights_only=True)
    names = {g["name"]: g["params"] for g in optimizer["param_groups"]}
    steps = {name: {int(optimizer["state"][i]["step"]) for i in ids if i in optimizer["state"]}
             for name, ids in names.items()}
    assert steps["head"] == {18} and steps["top"] == {12} and steps["block.1"] == {12}
    assert steps["block.0"] == {6} and steps["embeddings"] == set()
    assert json.loads((out / "run.json").read_text())["status"] == "FINISHED"

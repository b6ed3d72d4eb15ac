"""Training end to end: every family x head learns, metrics are sane, resume is exact,
frozen weights stay bit-identical, and the saved model loads with transformers."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from conftest import REPO, compose, fast, mlflow_runs
from runner.config.families import FAMILIES
from runner.run import run

PAIRS = [(f, h) for f, spec in FAMILIES.items() for h in spec.heads]


def train(tmp_path: Path, overrides: list[str], name: str = "run") -> tuple[float, dict]:
    """Run in this process like `python -m runner`, tracked in a sqlite store in tmp_path."""
    out = tmp_path / name
    cfg = compose([*overrides, f"trainer.output_dir={out}",
                   f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    value = run(cfg)
    return value, json.loads((out / "run.json").read_text())


@pytest.mark.parametrize("family,head", PAIRS)
def test_every_pair_trains_and_its_loss_goes_down(tmp_path, family, head):
    extra = ["data.max_length=96"] if head == "qa" else []
    value, info = train(tmp_path, fast(head, family, "freeze=none", "trainer.lr=1e-3",
                                       "trainer.max_epochs=5", *extra))
    assert info["status"] == "FINISHED"
    client, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    history = client.get_metric_history(record.info.run_id, "train/loss")
    losses = [m.value for m in sorted(history, key=lambda m: m.step)]
    per_epoch = len(losses) // 5
    assert per_epoch >= 2
    first, last = losses[:per_epoch], losses[-per_epoch:]
    assert sum(last) / len(last) < sum(first) / len(first), losses
    metrics = info["metrics"]
    assert value == metrics[record.data.tags["runner.objective"]]
    if head == "seqcls":
        assert 0 <= metrics["eval/accuracy"] <= 1 and 0 <= metrics["eval/f1_macro"] <= 1
    elif head == "tokencls":
        assert all(0 <= metrics[f"eval/{k}"] <= 1 for k in ("precision", "recall", "f1"))
    elif head == "qa":
        assert 0 <= metrics["eval/exact_match"] <= metrics["eval/f1"] <= 1
    elif head == "seq2seq":
        assert 0 <= metrics["eval/bleu"] <= 100 and metrics["eval/loss"] > 0
    else:
        assert math.isclose(metrics["eval/perplexity"], math.exp(metrics["eval/loss"]),
                            rel_tol=1e-6)


def test_same_seed_repeats_exactly_on_cpu(tmp_path, monkeypatch):
    # The second run starts from a fresh cache: it trains its own tokenizer.
    overrides = fast("seqcls", "bert", "freeze=none", "trainer.max_epochs=1")
    _, a = train(tmp_path, overrides, "a")
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "fresh-cache"))
    _, b = train(tmp_path, overrides, "b")
    assert a["metrics"]["eval/loss"] == b["metrics"]["eval/loss"]
    vocab = [(tmp_path / run / "model" / "tokenizer.json").read_text() for run in "ab"]
    assert vocab[0] == vocab[1]


def test_frozen_weights_stay_bit_identical_and_pipeline_loads(tmp_path):
    from transformers import pipeline

    cfg_path = compose(["model=minilm"]).model.checkpoint
    train(tmp_path, ["model=minilm", "freeze=head_only", "data.max_train_samples=64",
                     "data.max_eval_samples=16", "trainer.max_epochs=2",
                     "trainer.frozen_eval_mode=false"])
    saved = tmp_path / "run" / "model"
    with safe_open(f"{cfg_path}/model.safetensors", "pt") as before, \
         safe_open(str(saved / "model.safetensors"), "pt") as after:
        for key in before.keys():  # noqa: SIM118 (safe_open is not iterable)
            # MiniLM's default (auto) pooling is its mean pooling: the pooled model has no
            # pooler, so the checkpoint's pooler weights are not part of it.
            if key == "embeddings.position_ids" or key.startswith("pooler."):
                continue
            assert torch.equal(before.get_tensor(key), after.get_tensor(f"bert.{key}")), key
        assert not torch.equal(after.get_tensor("classifier.weight"),
                               torch.zeros_like(after.get_tensor("classifier.weight")))
    classify = pipeline("text-classification", model=str(saved))
    (result,) = classify("a wonderful, moving film")
    assert result["label"] in ("negative", "positive")


def test_token_classifier_and_generator_load_with_pipeline(tmp_path):
    from transformers import pipeline

    train(tmp_path, fast("tokencls", "distilbert"), "ner")
    tagger = pipeline("token-classification", model=str(tmp_path / "ner" / "model"))
    assert isinstance(tagger("Anna Berg works in Oslo"), list)
    train(tmp_path, fast("causal_lm", "gpt2"), "lm")
    generate = pipeline("text-generation", model=str(tmp_path / "lm" / "model"))
    out = generate("Once upon a time", max_new_tokens=5, do_sample=False)
    assert out[0]["generated_text"].startswith("Once upon a time")


def test_seq2seq_and_qa_outputs_reload_and_run(tmp_path):
    from transformers import AutoModelForQuestionAnswering, AutoModelForSeq2SeqLM, AutoTokenizer

    train(tmp_path, fast("seq2seq", "t5"), "mt")
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "mt" / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "mt" / "model")
    ids = model.generate(**tok(["the red cat sleeps"], return_tensors="pt"), max_new_tokens=5)
    assert ids.shape[0] == 1
    train(tmp_path, fast("qa", "bert", "data.max_length=96"), "qa")
    model = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "qa" / "model")
    tok = AutoTokenizer.from_pretrained(tmp_path / "qa" / "model")
    out = model(**tok("Who?", "Anna built it.", return_tensors="pt"))
    assert out.start_logits.shape == out.end_logits.shape


def test_local_headerless_tsv_with_string_labels_sets_id2label(tmp_path):
    rows = ["a joy to watch\tgood", "a waste of time\tbad", "simply superb\tgood",
            "dull and slow\tbad"] * 8
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "val.tsv").write_text("\n".join(rows[:8]) + "\n")
    train(tmp_path, [*fast("seqcls"), "data=local", f"data.train_file={tmp_path / 'train.tsv'}",
                     f"data.validation_file={tmp_path / 'val.tsv'}", "data.header=false"])
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "bad", "1": "good"}
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")  # what the data decided is recorded
    assert record.data.params["head.num_labels"] == "2"
    assert record.data.params["head.label_names"] == '["bad", "good"]'


def test_nan_loss_stops_training_and_says_where(tmp_path):
    from runner.train.loop import TrainingError

    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at step \d+ \(epoch 1\)"):
        train(tmp_path, fast("seqcls", "bert", "freeze=none", "trainer.lr=1e30",
                             "trainer.max_grad_norm=0", "trainer.max_epochs=3"))


# ------------------------------------------------------------------ interruption & resume

SLOW_STEPS = ["+model.config_overrides.hidden_size=128", "data.max_train_samples=160",
              "trainer.batch_size=16", "trainer.max_epochs=3", "trainer.save_every=2",
              "freeze=none", "logger=none"]


def resume_overrides() -> list[str]:
    base = [o for o in fast("seqcls") if "hidden_size" not in o and "max_train" not in o
            and "batch_size=8" not in o and "max_epochs" not in o]
    return [*base, *SLOW_STEPS]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# top_n: the frozen-prefix cache is rebuilt by the resumed process and replays the same rows;
# lora: the adapters (and their dropout's RNG) come back from the checkpoint;
# gradual (2 blocks: head, top 1, top 2 from epochs 0, 1, 2): killed in stage 1, the resumed
# run continues in stage 1 (no body cache there) and enters stage 2 at its epoch.
@pytest.mark.parametrize("freeze", [[], ["freeze=top_n", "freeze.n=1"],
                                    ["freeze=lora", "trainer.lr=1e-3"], ["freeze=gradual"]],
                         ids=["none", "top_n", "lora", "gradual"])
def test_sigkill_then_resume_auto_matches_an_uninterrupted_run(tmp_path, freeze):
    overrides = [*resume_overrides(), *freeze]
    args = [sys.executable, "-m", "runner", *overrides]
    straight = subprocess.run([*args, f"trainer.output_dir={tmp_path / 'straight'}"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr
    cached = "frozen prefix cached" in straight.stdout + straight.stderr
    assert cached == ("freeze=top_n" in freeze)
    expected = json.loads((tmp_path / "straight" / "run.json").read_text())["metrics"]

    out = tmp_path / "interrupted"
    proc = subprocess.Popen([*args, f"trainer.output_dir={out}"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill in the second epoch (10 steps each), so the resumed run must rebuild that
    # epoch's batch order and skip into it.
    wait_for(lambda: (out / "checkpoints" / "step-00000012" / "progress.json").is_file(), 300,
             "the step-12 checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    steps = sorted(int(p.parent.name[5:]) for p in out.glob("checkpoints/step-*/progress.json"))
    assert 12 <= steps[-1] < 30, steps  # 160 rows / 16 * 3 epochs = 30 steps in all
    assert json.loads((out / "run.json").read_text())["status"] == "RUNNING"

    resumed = subprocess.run([*args, f"trainer.output_dir={out}", "trainer.resume=auto"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {out}" in resumed.stdout + resumed.stderr
    if freeze == ["freeze=gradual"]:
        said = resumed.stdout + resumed.stderr
        assert "stage 2 (from epoch 2: top_n n=2)" in said
        assert "frozen-body feature cache: computed" not in said
    got = json.loads((out / "run.json").read_text())
    assert got["status"] == "FINISHED"
    for key in ("eval/loss", "eval/accuracy", "eval/f1_macro"):
        assert math.isclose(got["metrics"][key], expected[key], rel_tol=1e-6, abs_tol=1e-7), key


def test_crash_mid_save_leaves_an_ignored_staging_folder(tmp_path):
    """A staging folder (what a crash during save leaves) is never resumed from."""
    out = tmp_path / "run"
    train(tmp_path, [*fast("seqcls"), "trainer.max_epochs=1", "logger=none"])
    (step,) = sorted(out.glob("checkpoints/step-*"))
    broken = out / "checkpoints" / ".staging-00000099"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"half a file")
    (out / "run.json").write_text(json.dumps({**json.loads((out / "run.json").read_text()),
                                              "status": "RUNNING"}))
    result = subprocess.run([sys.executable, "-m", "runner", *fast("seqcls"),
                             "trainer.max_epochs=1", "logger=none", f"trainer.output_dir={out}",
                             "trainer.resume=auto"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"resumed from {step}" in result.stdout + result.stderr
    assert not broken.exists()


def test_resume_refuses_changed_hyperparameters(tmp_path):
    out = tmp_path / "run"
    train(tmp_path, [*fast("seqcls"), "trainer.max_epochs=1", "logger=none"])
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "RUNNING"}))
    result = subprocess.run([sys.executable, "-m", "runner", *fast("seqcls"),
                             "trainer.max_epochs=1", "trainer.lr=0.5", "logger=none",
                             f"trainer.output_dir={out}", "trainer.resume=auto"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert "refusing to resume" in result.stderr and "trainer.lr" in result.stderr


def test_early_stopping_stops_when_the_objective_stalls(tmp_path):
    # lr ~ 0: the objective cannot improve after the first evaluation
    _, info = train(tmp_path, fast("seqcls", "bert", "trainer.lr=1e-12", "trainer.max_epochs=3",
                                   "trainer.eval_strategy=steps", "trainer.eval_steps=1",
                                   "trainer.early_stopping_patience=2", "logger=none"))
    steps = sorted(int(p.name[5:]) for p in (tmp_path / "run" / "checkpoints").glob("step-*"))
    assert steps[-1] == 3  # evaluations at steps 1, 2, 3; no improvement at 2 and 3


def test_bf16_on_cpu_trains_and_fp16_on_cpu_is_refused(tmp_path):
    from runner.errors import ConfigError

    _, info = train(tmp_path, fast("seqcls", "bert", "trainer.mixed_precision=bf16",
                                   "trainer.max_epochs=1", "logger=none"), "bf16")
    assert info["status"] == "FINISHED"
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        train(tmp_path, fast("seqcls", "bert", "trainer.mixed_precision=fp16", "logger=none"),
              "fp16")


def test_gradient_accumulation_takes_one_step_per_window(tmp_path):
    train(tmp_path, fast("seqcls", "bert", "trainer.grad_accum=3", "trainer.max_epochs=1",
                         "logger=none"))
    (step,) = (tmp_path / "run" / "checkpoints").glob("step-*")
    assert step.name == "step-00000002"  # 6 batches of 8 / 3 per step


def test_optimizer_state_exists_only_for_trainable_parameters(tmp_path):
    _, info = train(tmp_path, ["model=minilm", "freeze=head_only", "data.max_train_samples=32",
                               "data.max_eval_samples=16", "trainer.max_epochs=1"])
    (step,) = (tmp_path / "run" / "checkpoints").glob("step-*")
    state = torch.load(step / "optimizer.bin", weights_only=True)
    assert len(state["state"]) == 2  # classifier.weight and classifier.bias, nothing else
    assert sum(len(g["params"]) for g in state["param_groups"]) == 2
    assert info["metrics"]["system/peak_rss_mb"] > 0
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    assert record.data.metrics["system/peak_rss_mb"] > 0


def test_a_head_only_sweep_tokenizes_once_and_runs_the_body_once_per_job(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "runner", "-m", "head.num_labels=2,3,4", "model=minilm",
         "freeze=head_only", "data.max_train_samples=32", "data.max_eval_samples=16",
         "trainer.max_epochs=2", "logger=none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = [p.read_text() for p in sorted(tmp_path.glob("outputs/sweeps/*/*/*.log"))]
    assert len(logs) == 3
    assert ["tokenized features: reusing" in log for log in logs] == [False, True, True]
    assert all(log.count("frozen-body feature cache: computed") == 1 for log in logs)


def test_resume_into_another_tracking_store_starts_a_new_mlflow_run(tmp_path, caplog):
    caplog.set_level("WARNING")
    args = fast("seqcls", "bert", "trainer.max_epochs=1")
    train(tmp_path, args)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    (tmp_path / "run" / "run.json").write_text(json.dumps({**info, "status": "RUNNING"}))
    other = tmp_path / "other.db"
    cfg = compose([*args, f"trainer.output_dir={tmp_path / 'run'}", "trainer.resume=auto",
                   f"logger.tracking_uri=sqlite:///{other}"])
    run(cfg)
    assert "is not in this store" in caplog.text
    _, (record,) = mlflow_runs(other)
    assert record.info.status == "FINISHED" and record.info.run_id != info["mlflow_run_id"]


# ------------------------------------------------------------------ the training parts

# Two runs in one process (a sweep's jobs) with different settings. In a subprocess: the
# first, unreset Accelerator leaves accelerate's process-wide state set.
TWO_ACCELERATORS = """
import json
from accelerate import Accelerator
from runner.train.accelerator import fresh_accelerator

Accelerator(cpu=True, mixed_precision="no")
try:
    plain = Accelerator(cpu=True, mixed_precision="bf16").mixed_precision
except ValueError as refused:
    plain = f"refused: {refused}"
fresh = fresh_accelerator(cpu=True, mixed_precision="bf16", gradient_accumulation_steps=3)
print(json.dumps({"plain": plain, "fresh": [fresh.mixed_precision,
                                             fresh.gradient_state.num_steps]}))
"""


def test_a_second_accelerator_gets_its_own_settings_only_through_fresh_accelerator():
    done = subprocess.run([sys.executable, "-c", TWO_ACCELERATORS], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["plain"] != "bf16"  # accelerate keeps the first run's setting or refuses
    assert got["fresh"] == ["bf16", 3]


def test_the_body_cache_covers_what_the_task_registry_says(monkeypatch):
    from runner.config.tasks import TASKS, TaskSpec
    from runner.train import body_cache

    fake = TaskSpec("fake_head", "AutoModel", "nowhere:Nothing", required_roles=("text",),
                    body_cache={"bert": "first", "gpt2": "last"})
    monkeypatch.setitem(TASKS, fake.name, fake)
    assert body_cache.KINDS["gpt2", "fake_head"] == "last"
    assert ("roberta", "fake_head") not in body_cache.KINDS
    assert "fake_head on bert and gpt2" in body_cache.covered()


def test_max_steps_decides_the_step_budget_over_max_epochs():
    from omegaconf import OmegaConf

    from runner.train.setup import step_budget

    settings = OmegaConf.create({"grad_accum": 2, "max_epochs": 3, "max_steps": None})
    assert step_budget(settings, batches_per_epoch=9) == (15, 3)  # ceil(9 / 2) * 3 epochs
    settings.max_steps = 7
    assert step_budget(settings, batches_per_epoch=9) == (7, 2)

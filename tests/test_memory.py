"""Fitting into memory: gradient checkpointing is exact with frozen layers and saves memory;
trainer.auto_batch_size halves on a real out-of-memory error (a process under an address
space limit), accumulates to the same rows per step, and a resumed run keeps its batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, compose, fast
from runner.config.families import family_of, head_spec
from runner.data.load import load_data
from runner.data.tokenizer import config_values, load_tokenizer
from runner.errors import ConfigError
from runner.model.build import build_config, build_model
from runner.model.freeze import apply_plan, plan_for_model
from runner.tasks import task_for
from runner.train.memory import (
    candidates,
    enable_gradient_checkpointing,
    frozen_modules_to_eval,
)

# ------------------------------------------------------------------ gradient checkpointing


def frozen_bottom_model(*extra: str):
    """Tiny BERT with the embeddings and the bottom block frozen, and one batch."""
    cfg = compose(fast("seqcls", "bert", "freeze=bottom_n", "freeze.n=1",
                       "model.config_overrides.num_hidden_layers=3", *extra))
    raw = load_data(cfg)
    tok = load_tokenizer(cfg, raw)
    config = build_config(cfg, raw.labels, config_values(cfg, tok))
    torch.manual_seed(0)
    model = build_model(cfg, config)
    apply_plan(model, plan_for_model(model, family_of(cfg), head_spec(cfg), cfg.freeze))
    task = task_for(cfg, tok, raw.labels)
    feats = task.features(raw)
    batch = task.collator(model)([feats.train[i] for i in range(8)])
    batch.pop("row_index")
    return model, batch


def grads(model, batch) -> dict[str, torch.Tensor]:
    model.train()
    frozen_modules_to_eval(model)
    torch.manual_seed(1)  # the trainable blocks' dropout draws the same masks both times
    model(**batch).loss.backward()
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_gradient_checkpointing_gives_the_same_gradients_with_frozen_layers():
    model, batch = frozen_bottom_model()
    plain = grads(model, batch)
    embedding_outputs = []
    model.bert.embeddings.register_forward_hook(
        lambda module, args, out: embedding_outputs.append(out.requires_grad))
    enable_gradient_checkpointing(model)
    checkpointed = grads(model, batch)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(plain) == set(checkpointed) == trainable  # every trainable tensor has a grad
    assert any(n.startswith("bert.encoder.layer.1.") for n in trainable)
    for name in plain:  # dropout on: the recompute replays the same masks
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7)
    # no input-gradient hook: backward stops at the frozen prefix instead of running through it
    assert embedding_outputs == [False]


def test_the_reentrant_variant_would_lose_those_gradients():
    """The classic bug the test above guards against: reentrant checkpointing with frozen
    embeddings and no input hook leaves the checkpointed trainable blocks without gradients."""
    model, batch = frozen_bottom_model()
    model.activation_checkpointing_enable({"use_reentrant": True})
    model.disable_input_require_grads()
    got = grads(model, batch)
    assert not any(n.startswith("bert.encoder.layer.") for n in got)


def test_a_model_class_without_checkpointing_support_is_a_config_error():
    from transformers import CTRLConfig, CTRLForSequenceClassification

    model = CTRLForSequenceClassification(CTRLConfig(n_embd=8, n_layer=1, n_head=2, dff=8,
                                                     vocab_size=10, n_positions=8))
    with pytest.raises(ConfigError, match="trainer.gradient_checkpointing.*does not support"):
        enable_gradient_checkpointing(model)


PEAK_SCRIPT = """
import json, sys, threading, time, torch
torch.set_num_threads(1)
from transformers import BertConfig, BertForSequenceClassification
from runner.train.memory import enable_gradient_checkpointing
torch.manual_seed(0)
model = BertForSequenceClassification(BertConfig(
    hidden_size=64, num_hidden_layers=6, num_attention_heads=2, intermediate_size=1024,
    vocab_size=100, max_position_embeddings=512, hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0))
model.bert.embeddings.requires_grad_(False)
if sys.argv[1] == "on":
    enable_gradient_checkpointing(model)
model.train()
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
def step(rows, length):
    ids = torch.randint(0, 100, (rows, length))
    model(input_ids=ids, labels=torch.zeros(rows, dtype=torch.long)).loss.backward()
    model.zero_grad(set_to_none=True)
step(1, 16)  # loads the code paths (their pages count in RSS too)
peak, done = [0.0], threading.Event()
def sample():  # the step's own peak: resident memory sampled every millisecond
    while not done.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.001)
before = rss_mb()
sampler = threading.Thread(target=sample)
sampler.start()
step(8, 512)
done.set()
sampler.join()
print(json.dumps({"step_mb": peak[0] - before}))
"""


def step_peak_mb(setting: str) -> float:
    # A fixed mmap threshold: glibc otherwise raises it after the first large free and keeps
    # freed activations in its heap, so RSS would count memory the step no longer uses.
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, setting], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["step_mb"]


def test_gradient_checkpointing_lowers_the_peak_memory_of_a_step():
    """Each variant in its own process: how far resident memory rises above where it was
    during one training step (forward + backward, 8 x 512 tokens, 6 blocks: activations
    dominate)."""
    off, on = step_peak_mb("off"), step_peak_mb("on")
    print(f"peak growth of one step: {off:.0f} MB without, {on:.0f} MB with checkpointing")
    assert on < 0.5 * off, (off, on)


# ------------------------------------------------------------------ auto batch size


def test_candidates_halve_and_divide_the_rows_per_step():
    assert candidates(64, 64) == [64, 32, 16, 8, 4, 2, 1]
    assert candidates(30, 30) == [30, 15, 6, 3, 1]  # each divides 30: exact accumulation
    assert candidates(16, 64) == [16, 8, 4, 2, 1]  # batch_size=16 x grad_accum=4


# A wide tiny BERT (hidden 8, intermediate 8192, 64 tokens): a training step keeps about
# 8 MB of activations per row, so under a limit of 200 MB above the warmed-up process,
# 64 and 32 rows cannot allocate and 16 can.
WIDE = ["model=bert", "model.init=scratch", "head=seqcls", "freeze=none",
        "+model.config_overrides.hidden_size=8", "+model.config_overrides.num_attention_heads=2",
        "+model.config_overrides.num_hidden_layers=2",
        "+model.config_overrides.intermediate_size=8192", "data=local", "data.max_length=64",
        "tokenizer.vocab_size=300", "tokenizer.min_frequency=1", "trainer.eval_batch_size=8",
        "trainer.max_epochs=2", "trainer.log_every=1", "logger=none"]

LIMITED_RUN = """
import json, logging, resource, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
sys.path.insert(0, {tests!r})
from conftest import compose
from runner.run import run
overrides, budget_mb = json.loads(sys.argv[1]), json.loads(sys.argv[2])
# A first tiny run imports and starts everything a run uses (libraries, thread pools), so
# the limit below bounds what the real run allocates.
warm = [o for o in overrides[:-1] if not o.startswith("trainer.resume")]
run(compose(warm + ["trainer.batch_size=2", "trainer.max_steps=1",
                              "trainer.auto_batch_size=false", overrides[-1] + "-warmup"]))
if budget_mb:
    vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize"))
    limit = vm * 1024 + budget_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
run(compose(overrides))
"""


def limited_run(tmp_path: Path, out: Path, budget_mb: int | None, *extra: str):
    data = tmp_path / "data"
    if not data.exists():
        data.mkdir()
        words = [f"w{i}" for i in range(40)]
        rows = ["\t".join([" ".join(words[(r * 7 + k) % 40] for k in range(80)), str(r % 2)])
                for r in range(72)]
        (data / "train.tsv").write_text("text\tlabel\n" + "\n".join(rows[:64]) + "\n")
        (data / "validation.tsv").write_text("text\tlabel\n" + "\n".join(rows[64:]) + "\n")
    overrides = [*WIDE, f"data.train_file={data / 'train.tsv'}",
                 f"data.validation_file={data / 'validation.tsv'}", "trainer.batch_size=64",
                 "trainer.auto_batch_size=true", *extra, f"trainer.output_dir={out}"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1",
           "MALLOC_ARENA_MAX": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c",
                           LIMITED_RUN.format(tests=str(REPO / "tests")),
                           json.dumps(overrides), json.dumps(budget_mb)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout + done.stderr, json.loads((out / "run.json").read_text())


def test_auto_batch_size_halves_on_a_real_out_of_memory_error_and_resumes_with_its_batch(
        tmp_path):
    out = tmp_path / "run"
    log, info = limited_run(tmp_path, out, budget_mb=200)
    assert "out of memory at 64, 32 rows" in log
    assert "batch 16 x 4 accumulation steps = 64 rows per optimizer step" in log
    assert info["status"] == "FINISHED"
    assert info["chosen"] == {"trainer.chosen_batch_size": 16, "trainer.chosen_grad_accum": 4}
    progress = json.loads((out / "checkpoints" / "step-00000002" / "progress.json").read_text())
    assert (progress["batch_size"], progress["grad_accum"]) == (16, 4)

    # Interrupted after epoch 1: resumed without the limit (where 64 rows would fit), it must
    # keep the checkpoint's batch of 16 and end exactly where the uninterrupted run did.
    import shutil

    shutil.rmtree(out / "checkpoints" / "step-00000002")
    (out / "run.json").write_text(json.dumps({**info, "status": "RUNNING"}))
    log, resumed = limited_run(tmp_path, out, None, "trainer.resume=auto")
    assert "trainer.auto_batch_size: 16 rows per batch, as in" in log
    assert resumed["status"] == "FINISHED"
    for key in ("eval/loss", "eval/accuracy"):
        assert resumed["metrics"][key] == pytest.approx(info["metrics"][key], rel=1e-6), key


@pytest.mark.parametrize("family,head", [("bert", "seqcls"), ("distilbert", "tokencls"),
                                         ("roberta", "qa"), ("gpt2", "causal_lm"),
                                         ("t5", "seq2seq")])
def test_every_family_trains_with_gradient_checkpointing(tmp_path, family, head):
    from runner.run import run

    extra = ["data.max_length=96"] if head == "qa" else []
    run(compose([*fast(head, family, "freeze=bottom_n", "freeze.n=1", "trainer.max_epochs=1",
                       "trainer.gradient_checkpointing=true", "logger=none", *extra),
                 f"trainer.output_dir={tmp_path}"]))
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "FINISHED"


def test_the_chosen_batch_size_is_an_mlflow_param_and_in_run_json(tmp_path):
    from conftest import mlflow_runs
    from runner.run import run

    run(compose([*fast("seqcls", "bert", "trainer.auto_batch_size=true", "trainer.max_epochs=1"),
                 f"trainer.output_dir={tmp_path / 'run'}",
                 f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"]))
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    params = record.data.params
    assert (params["trainer.chosen_batch_size"], params["trainer.chosen_grad_accum"]) == ("8", "1")
    chosen = json.loads((tmp_path / "run" / "run.json").read_text())["chosen"]
    assert chosen == {"trainer.chosen_batch_size": 8, "trainer.chosen_grad_accum": 1}


def test_batch_size_auto_on_the_command_line_means_auto_batch_size(tmp_path):
    """`python -m runner trainer.batch_size=auto`, as the HF Trainer's users spell it: the
    run probes its batch (largest tried: the batch_size set before it) instead of failing
    to compose."""
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "runner", *fast("seqcls", "bert", "trainer.max_epochs=1"),
         "trainer.batch_size=auto", "logger=none", f"trainer.output_dir={out}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["chosen"] == {"trainer.chosen_batch_size": 8, "trainer.chosen_grad_accum": 1}
    (recorded,) = tmp_path.rglob("overrides.yaml")  # Hydra's record of the command line
    assert "trainer.auto_batch_size=true" in recorded.read_text()
    assert "batch_size=auto" not in recorded.read_text()

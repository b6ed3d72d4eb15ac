"""The CUDA paths a CPU machine cannot run, checked in a few minutes on one GPU.

    benchmarks/gpu_check.sh                       # on a GPU machine (under 8 minutes)
    GPU_CHECK_DEVICE=cpu benchmarks/gpu_check.sh  # smoke mode: what a CPU can run, small

One line per check, `PASS|FAIL|SKIP name: numbers`; the exit code is 1 if any check failed.
Each training run is runner's own code path (`run(cfg)`), logger off.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from runner.config.compose import compose  # noqa: E402
from runner.run import run  # noqa: E402

CPU = os.environ.get("GPU_CHECK_DEVICE", "cuda") == "cpu"
RESULTS: list[str] = []


def report(status: str, name: str, numbers: str) -> None:
    line = f"{status} {name}: {numbers}"
    RESULTS.append(status)
    print(line, flush=True)


def check(name: str):
    """Run the check; an exception is a FAIL with its message, never a crash of the rest."""
    def wrap(fn):
        def go():
            start = time.perf_counter()
            try:
                fn(name)
            except Exception as err:  # noqa: BLE001
                report("FAIL", name, f"{type(err).__name__}: {str(err)[:300]}")
            print(f"      ({time.perf_counter() - start:.0f} s)", flush=True)
        return go
    return wrap


class Lines(logging.Handler):
    """runner's log lines during one run."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []

    def emit(self, record):
        self.text.append(record.getMessage())

    def has(self, words: str) -> bool:
        return any(words in line for line in self.text)


def train(*overrides: str) -> tuple[dict, Lines, float]:
    """One runner run: (run.json, its log lines, wall seconds)."""
    lines, logger = Lines(), logging.getLogger("runner")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)  # INFO records reach the handler without a console setup
    try:
        with tempfile.TemporaryDirectory() as out:
            base = ["logger=none", "trainer.save_model=false", "trainer.log_every=20",
                    f"trainer.output_dir={out}", *(["trainer.cpu=true"] if CPU else [])]
            keys = {o.split("=")[0] for o in overrides}
            base = [b for b in base if b.split("=")[0] not in keys]
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # one line per check, not per run
                run(compose([*base, *overrides]))
            wall = time.perf_counter() - start
            info = json.loads((Path(out) / "run.json").read_text())
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    return info, lines, wall


SMALL = ["data.max_train_samples=64", "data.max_eval_samples=32"] if CPU else []
MINILM = ["model=minilm", "head=seqcls", *SMALL]


def summary(info: dict, wall: float) -> str:
    m = info["metrics"]
    gpu = f", peak GPU {m['system/peak_gpu_mb']:.0f} MB" if "system/peak_gpu_mb" in m else ""
    return f"accuracy {m['eval/accuracy']:.4f}, {wall:.1f} s{gpu}"


def mixed_precision(name, precision):
    """One epoch of full fine-tuning in this precision: it finishes with a finite loss."""
    info, _, wall = train(*MINILM, "freeze=none", "trainer.max_epochs=1",
                          f"trainer.mixed_precision={precision}")
    ok = info["status"] == "FINISHED" and info["metrics"]["eval/loss"] < 10
    report("PASS" if ok else "FAIL", name, summary(info, wall))


@check("bf16")
def bf16(name):
    mixed_precision(name, "bf16")


@check("fp16")
def fp16(name):
    if CPU:
        report("SKIP", name, "fp16 needs a GPU")
        return
    mixed_precision(name, "fp16")


@check("body_cache")
def body_cache(name):
    info, lines, wall = train(*MINILM, "freeze=head_only", "trainer.max_epochs=3")
    cached = lines.has("frozen-body feature cache: computed")
    report("PASS" if cached and info["status"] == "FINISHED" else "FAIL", name,
           f"cache used: {cached}, {summary(info, wall)}")


@check("prefix_cache")
def prefix_cache(name):
    """top_n: the frozen prefix is cached where this checkout has that cache."""
    info, lines, wall = train(*MINILM, "freeze=top_n", "freeze.n=1", "trainer.max_epochs=2")
    cache = next((line for line in lines.text if "cache" in line and "not used" not in line),
                 "no cache line in the log")
    report("PASS" if info["status"] == "FINISHED" else "FAIL", name,
           f"{summary(info, wall)}; {cache[:120]}")


def step_peak(checkpointing: bool, batch: int, length: int) -> float:
    """Peak memory (MB) of one training step of a BERT-base-sized model, frozen embeddings."""
    from transformers import BertConfig, BertForSequenceClassification

    from runner.train.memory import enable_gradient_checkpointing

    device = torch.device("cpu" if CPU else "cuda")
    torch.manual_seed(0)
    size = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=256) if CPU else {}
    model = BertForSequenceClassification(BertConfig(**size)).to(device)
    model.bert.embeddings.requires_grad_(False)
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    ids = torch.randint(0, 1000, (batch, length), device=device)
    if not CPU:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    model(input_ids=ids, labels=torch.zeros(batch, dtype=torch.long, device=device)).loss.backward()
    peak = 0.0 if CPU else (torch.cuda.max_memory_allocated() - start) / 2**20
    del model, ids
    if not CPU:
        torch.cuda.empty_cache()
    return peak


@check("gradient_checkpointing")
def gradient_checkpointing(name):
    info, lines, wall = train(*MINILM, "freeze=bottom_n", "freeze.n=2", "trainer.max_epochs=1",
                              "trainer.gradient_checkpointing=true")
    on_in_log = lines.has("gradient checkpointing: on (non-reentrant)")
    if CPU:
        step_peak(True, 2, 64)
        report("PASS" if on_in_log else "FAIL", name,
               f"trained with it, {summary(info, wall)} (memory measured on GPU only)")
        return
    off, on = step_peak(False, 32, 512), step_peak(True, 32, 512)
    ok = on_in_log and on < 0.6 * off
    report("PASS" if ok else "FAIL", name,
           f"BERT-base step 32x512: peak {off:.0f} MB without, {on:.0f} MB with "
           f"({off / on:.1f}x less); minilm run {summary(info, wall)}")


@check("auto_batch_size")
def auto_batch_size(name):
    if CPU:
        report("SKIP", name, "a CUDA out-of-memory needs a GPU (the CPU path is tested by "
               "tests/test_memory.py under an address-space limit)")
        return
    total = torch.cuda.get_device_properties(0).total_memory
    fraction = 3 * 2**30 / total  # 3 GiB: minilm at 1024 x 128 tokens cannot fit
    torch.cuda.set_per_process_memory_fraction(fraction)
    try:
        info, lines, wall = train(*MINILM, "freeze=none", "trainer.max_epochs=1",
                                  "trainer.batch_size=1024", "trainer.auto_batch_size=true",
                                  "data.max_length=128", "trainer.eval_batch_size=64")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    chosen = info.get("chosen", {})
    ran_out = next((line for line in lines.text if "out of memory at" in line), "")
    ok = bool(ran_out) and chosen.get("trainer.chosen_batch_size", 1024) < 1024 \
        and info["status"] == "FINISHED"
    report("PASS" if ok else "FAIL", name,
           f"limit 3 GiB: {ran_out.split(': ', 1)[-1] or 'no out-of-memory'}; chose "
           f"{chosen.get('trainer.chosen_batch_size')} x {chosen.get('trainer.chosen_grad_accum')}"
           f" accumulation; {summary(info, wall)}")


@check("no_host_syncs")
def no_host_syncs(name):
    """CUDA's sync debug mode warns at every synchronizing call; count runner's own per step."""
    if CPU:
        report("SKIP", name, "CUDA sync debug mode (tests/test_host_syncs.py covers the CPU side)")
        return
    steps = 60
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train(*MINILM, "freeze=none", f"trainer.max_steps={steps}", "trainer.log_every=30",
                  "trainer.eval_strategy=no")
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found = [w for w in caught if "synchronizing" in str(w.message)]
    syncs = [f"{Path(w.filename).name}:{w.lineno}" for w in found]
    in_loop = [w for w in found if "/runner/train/" in w.filename]
    top = sorted({s: syncs.count(s) for s in syncs}.items(), key=lambda kv: -kv[1])[:4]
    report("PASS" if len(in_loop) < steps / 4 else "FAIL", name,
           f"{len(in_loop)} syncs from runner/train in {steps} steps; all syncs {len(syncs)}, "
           f"most at {top}")


@check("throughput")
def throughput(name):
    """runner vs the HF Trainer (length-grouped), full fine-tune, about 2 minutes."""
    args = ["--workloads", "full", "--ways", "runner", "trainer"]
    args += (["--repeats", "1", "--epochs", "1", "--max-train-samples", "64"] if CPU
             else ["--repeats", "2", "--epochs", "3"])
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_trainers.py"), *args],
                          capture_output=True, text=True, timeout=400)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-300:])
    ratio_line = next(line for line in done.stdout.splitlines() if line.startswith("full:"))
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("full ")]
    walls = {r[1]: float(r[2]) for r in rows}
    ok = CPU or walls["runner"] <= 1.10 * walls["trainer"]
    report("PASS" if ok else "FAIL", name, f"wall runner {walls['runner']:.1f} s, Trainer "
           f"{walls['trainer']:.1f} s; {ratio_line.removeprefix('full: ')}")


@check("gpu_slots")
def gpu_slots(name):
    """Two parallel joblib jobs: each on a GPU of its own, or (one GPU) one after the other.
    Smoke mode hands out two named devices that do not exist, so the jobs train on the CPU."""
    tiny = ["model=bert", "model.init=scratch", *(f"+model.config_overrides.{k}" for k in (
        "hidden_size=32", "num_hidden_layers=2", "num_attention_heads=2",
        "intermediate_size=37", "vocab_size=99")), "tokenizer.vocab_size=300",
        "tokenizer.min_frequency=1", "data.max_length=64", "data.max_train_samples=64",
        "data.max_eval_samples=32", "trainer.max_epochs=1"]
    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": "0,1"} if CPU else {})}
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-m", "runner", "-m", "hydra/launcher=joblib",
             "hydra.launcher.n_jobs=2", "head.num_labels=2,3", "logger=none",
             f"hydra.sweep.dir={out}", *tiny], capture_output=True, text=True, timeout=300,
            env=env, cwd=out)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-300:])
        jobs = [json.loads(p.read_text()) for p in sorted(Path(out, "jobs").glob("*.json"))]
        on_gpu = [bool(json.loads(Path(j["output_dir"], "run.json").read_text())["metrics"]
                       .get("system/peak_gpu_mb")) for j in jobs]
    gpus = [j["gpu"] for j in jobs]
    first, second = sorted(jobs, key=lambda j: j["started"])
    apart = len(set(gpus)) == 2 or first["ended"] <= second["started"]
    ok = None not in gpus and apart and (CPU or all(on_gpu))
    report("PASS" if ok else "FAIL", name, f"jobs on GPUs {gpus}, "
           f"{'side by side' if len(set(gpus)) == 2 else 'one after the other'}, "
           f"trained on CUDA: {on_gpu}")


def main() -> None:
    if not CPU and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU machine, or GPU_CHECK_DEVICE=cpu for the smoke mode")
    print(f"device: {'cpu (smoke mode)' if CPU else torch.cuda.get_device_name(0)}, "
          f"torch {torch.__version__}", flush=True)
    for go in (bf16, fp16, body_cache, prefix_cache, gradient_checkpointing, auto_batch_size,
               no_host_syncs, gpu_slots, throughput):
        go()
    failed = RESULTS.count("FAIL")
    print(f"{len(RESULTS) - failed - RESULTS.count('SKIP')} passed, {failed} failed, "
          f"{RESULTS.count('SKIP')} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

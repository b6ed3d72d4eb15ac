"""The same experiment several ways: runner (with and without its caches), the Hugging Face
Trainer (length-grouped and random batches), a bare accelerate loop.

    python benchmarks/bench_trainers.py                       # bundled sentiment data
    python benchmarks/bench_trainers.py --repeats 3 --workloads head_only \\
        --train-file ../shared/data/sst2/train.tsv \\
        --validation-file ../shared/data/sst2/validation.tsv --max-train-samples 2000

Each measurement runs in its own process (clean peak memory), the three ways alternating,
and prints wall time, training samples per second, peak memory and the final accuracy,
then the medians and the ratios runner/Trainer and runner/bare loop.

All three use the same model (pretrained all-MiniLM-L6-v2 + a sequence-classification
head), the same tokenized features (runner's own loading and tokenization, max length
128, dynamic padding), batch size, epochs, learning rate, linear schedule without warmup,
AdamW with weight decay 0.01 off biases and norms, length-grouped batches, seed, and a
checkpoint at every epoch end. Wall time runs from loading the data to the final metrics.
Workloads: `full` (everything trains), `head_only` (only the classifier; the runner
computes the frozen body's features once, the Trainer and the bare loop run it every step,
as they do), `top_n1` / `top_n2` (the top 1 or 2 blocks and the head train; the runner
caches the frozen prefix below them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAYS = ("runner", "runner_nocache", "trainer", "trainer_random", "bare")
WORKLOADS = ("full", "head_only", "top_n1", "top_n2", "lora")
# full: everything trains; head_only: the classifier; top_n<k>: the top k blocks + head;
# lora: LoRA adapters (r=8 on query, value) + head (runner only: --ways runner)
FREEZE = {"full": ["freeze=none"], "head_only": ["freeze=head_only"],
          "top_n1": ["freeze=top_n", "freeze.n=1"], "top_n2": ["freeze=top_n", "freeze.n=2"],
          "lora": ["freeze=lora"]}
LR = {"full": 5e-5, "head_only": 1e-2, "top_n1": 1e-4, "top_n2": 1e-4, "lora": 1e-3}


def overrides(args, workload: str, output_dir: str) -> list[str]:
    data = ["data=sample"]
    if args.train_file:
        data = ["data=local", f"data.train_file={Path(args.train_file).resolve()}"]
        if args.validation_file:
            data.append(f"data.validation_file={Path(args.validation_file).resolve()}")
    if args.max_train_samples:
        data.append(f"data.max_train_samples={args.max_train_samples}")
    return ["model=minilm", "head=seqcls", *FREEZE[workload], *data, "logger=none",
            f"trainer.lr={LR[workload]}", f"trainer.max_epochs={args.epochs}",
            f"trainer.batch_size={args.batch_size}", "trainer.log_every=1000",
            "trainer.save_model=false", f"trainer.output_dir={output_dir}"]


# ------------------------------------------------------------------------------ one way


def prepared(cfg):
    """runner's own data, tokenizer and features, shared by the Trainer and the bare loop."""
    from runner.data.load import load_data
    from runner.data.tokenizer import load_tokenizer
    from runner.tasks import task_for

    raw = load_data(cfg)
    tokenizer = load_tokenizer(cfg, raw)
    task = task_for(cfg, tokenizer, raw.labels)
    return raw, tokenizer, task, task.features(raw)


def fresh_model(cfg, raw, tokenizer):
    from runner.config.families import family_of, head_spec
    from runner.data.tokenizer import config_values
    from runner.model.build import build_config, build_model, seed_everything
    from runner.model.freeze import apply_plan, plan_for_model

    seed_everything(cfg.trainer.seed)
    model = build_model(cfg, build_config(cfg, raw.labels, config_values(cfg, tokenizer)))
    apply_plan(model, plan_for_model(model, family_of(cfg), head_spec(cfg), cfg.freeze))
    return model


def with_runner(cfg) -> float:
    from runner.run import run

    return run(cfg)


def with_runner_nocache(cfg) -> float:
    """runner with its frozen-body and frozen-prefix caches off: the frozen part runs every
    step, as it does in the Trainer."""
    cfg.trainer.cache_features = False
    return with_runner(cfg)


def with_hf_trainer_random(cfg) -> float:
    return with_hf_trainer(cfg, sampling="random")


def with_hf_trainer(cfg, sampling: str = "group_by_length") -> float:
    import numpy as np
    from transformers import Trainer, TrainingArguments

    from runner.tasks.base import INDEX
    from runner.train.setup import optimizer_groups

    raw, tokenizer, task, feats = prepared(cfg)
    model = fresh_model(cfg, raw, tokenizer)
    t = cfg.trainer
    arguments = TrainingArguments(
        output_dir=str(cfg.trainer.output_dir), per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size, learning_rate=t.lr,
        weight_decay=t.weight_decay, num_train_epochs=t.max_epochs, lr_scheduler_type="linear",
        warmup_steps=0, max_grad_norm=t.max_grad_norm, seed=t.seed,
        train_sampling_strategy=sampling,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=t.keep_checkpoints,
        logging_steps=1000, report_to=[], use_cpu=not _has_gpu(), dataloader_num_workers=0,
        disable_tqdm=True)

    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1)
                                   == prediction.label_ids).mean())}

    import torch

    optimizer = torch.optim.AdamW(optimizer_groups(model, t.weight_decay), lr=t.lr)
    trainer = Trainer(model=model, args=arguments, train_dataset=feats.train.remove_columns(INDEX),
                      eval_dataset=feats.validation.remove_columns(INDEX),
                      data_collator=task.collator(model), compute_metrics=accuracy,
                      optimizers=(optimizer, None))
    trainer.train()
    return trainer.evaluate()["eval_accuracy"]


def with_bare_loop(cfg) -> float:
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from runner.tasks.base import INDEX
    from runner.train.batching import TrainBatches, eval_batches
    from runner.train.setup import optimizer_groups

    raw, tokenizer, task, feats = prepared(cfg)
    model = fresh_model(cfg, raw, tokenizer)
    t = cfg.trainer
    accelerator = Accelerator()
    collate = task.collator(model)
    train_lengths = [len(x) for x in feats.train["input_ids"]]
    train_loader = DataLoader(feats.train.remove_columns(INDEX), collate_fn=collate,
                              batch_sampler=(batches := TrainBatches(train_lengths, t.batch_size,
                                                                     t.seed)))
    eval_loader = DataLoader(feats.validation.remove_columns(INDEX), collate_fn=collate,
                             batch_sampler=eval_batches([len(x) for x in
                                                         feats.validation["input_ids"]],
                                                        t.eval_batch_size))
    optimizer = torch.optim.AdamW(optimizer_groups(model, t.weight_decay), lr=t.lr)
    steps = len(train_loader) * t.max_epochs
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=steps)
    model, optimizer, train_loader, eval_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, eval_loader, scheduler)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(t.max_epochs):
        batches.use_epoch(epoch)
        model.train()
        for batch in train_loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(trainable, t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        accelerator.save_state(os.path.join(t.output_dir, f"epoch-{epoch}"))
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for batch in eval_loader:
                predictions = model(**batch).logits.argmax(-1)
                correct += int((predictions == batch["labels"]).sum())
                total += len(predictions)
    return correct / total


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def measure_one(args) -> None:
    """Run one way once in this process; print one JSON line."""
    from runner.config.compose import compose

    with tempfile.TemporaryDirectory() as out:
        cfg = compose(overrides(args, args.workload, out))
        from runner.config.defaults import fill_defaults

        fill_defaults(cfg)
        start = time.perf_counter()
        way = {"runner": with_runner, "runner_nocache": with_runner_nocache,
               "trainer": with_hf_trainer, "trainer_random": with_hf_trainer_random,
               "bare": with_bare_loop}[args.one]
        accuracy = way(cfg)
        wall = time.perf_counter() - start
    from runner.data.load import load_data

    rows = len(load_data(cfg).train)
    print(json.dumps({"way": args.one, "workload": args.workload, "wall_s": wall,
                      "samples_per_s": rows * args.epochs / wall,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "accuracy": accuracy}))


# ------------------------------------------------------------------------------ driver


def run_measurement(args, way: str, workload: str) -> dict:
    command = [sys.executable, __file__, "--one", way, "--workload", workload,
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    for flag in ("train_file", "validation_file", "max_train_samples"):
        if getattr(args, flag):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {**os.environ, "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{way}/{workload} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict], workloads: list[str], ways: list[str]) -> str:
    repeats = len(results) // (len(ways) * len(workloads))
    lines = [f"{'workload':<10}{'way':<15}{'wall s':>9}{'samples/s':>11}{'peak MB':>9}"
             f"{'accuracy':>10}   (medians of {repeats} runs)"]
    medians = {}
    for workload in workloads:
        for way in ways:
            rows = [r for r in results if r["way"] == way and r["workload"] == workload]
            m = {k: statistics.median(r[k] for r in rows)
                 for k in ("wall_s", "samples_per_s", "peak_rss_mb", "accuracy")}
            medians[workload, way] = m
            lines.append(f"{workload:<10}{way:<15}{m['wall_s']:>9.1f}{m['samples_per_s']:>11.1f}"
                         f"{m['peak_rss_mb']:>9.0f}{m['accuracy']:>10.4f}")
    lines.append("")
    for workload in workloads:
        r = medians[workload, "runner"]
        parts = []
        for other in ways[1:]:
            o = medians[workload, other]
            parts.append(f"runner/{other} wall {r['wall_s'] / o['wall_s']:.2f}x "
                         f"({o['wall_s'] / r['wall_s']:.1f}x faster), throughput "
                         f"{r['samples_per_s'] / o['samples_per_s']:.2f}, accuracy "
                         f"{100 * (r['accuracy'] - o['accuracy']):+.1f} points")
        lines.append(f"{workload}: " + "; ".join(parts))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["full", "head_only"],
                        choices=WORKLOADS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-file", help="TSV/CSV/JSONL with text and label columns")
    parser.add_argument("--validation-file")
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS,
                        help="runner first; runner_nocache = runner with "
                        "trainer.cache_features=false; trainer = HF Trainer with length-grouped "
                        "batches like runner; trainer_random = its default random batches")
    parser.add_argument("--one", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--workload", default="full", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure_one(args)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}", flush=True)
    results = []
    for repeat in range(args.repeats):
        for workload in args.workloads:
            order = args.ways if repeat % 2 == 0 else list(reversed(args.ways))
            for way in order:
                result = run_measurement(args, way, workload)
                results.append(result)
                print(f"  run {repeat + 1}: {workload:<9} {way:<8} {result['wall_s']:7.1f} s  "
                      f"accuracy {result['accuracy']:.4f}", flush=True)
    print()
    print(table(results, args.workloads, args.ways))
    if any(math.isnan(r["accuracy"]) for r in results):
        sys.exit("a run produced no accuracy")


if __name__ == "__main__":
    main()

"""Issue 12: full fine-tune vs gradual unfreezing vs head_only on SST-2 with MiniLM.

Each way is one `python -m runner` process (wall time measured around it, imports
included), tracked in its own sqlite MLflow store so the trainable count per stage can be
read back; prints one row per way: accuracy, wall s, trainable parameters (the most any
stage trains, and per stage), peak RSS.

    python benchmarks/bench_schedule.py --data ../shared/data/sst2 --max-train-samples 2000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAYS = {
    "none": ["freeze=none"],
    "gradual": ["freeze=gradual"],
    "gradual_head_lr": ["freeze=gradual", "trainer.head_lr=1e-3"],
    "gradual_lld": ["freeze=gradual", "trainer.head_lr=1e-3", "trainer.lr=1e-4",
                    "trainer.layer_lr_decay=0.8"],
    "head_only": ["freeze=head_only"],
}


def run_one(way: str, args, root: Path) -> dict:
    out, db = root / way, root / f"{way}.db"
    command = [sys.executable, "-m", "runner", "model=minilm", "data=local",
               f"data.train_file={args.data / 'train.tsv'}",
               f"data.validation_file={args.data / 'validation.tsv'}",
               f"data.max_train_samples={args.max_train_samples}",
               f"trainer.max_epochs={args.epochs}", f"trainer.output_dir={out}",
               "trainer.save_model=false", f"logger.tracking_uri=sqlite:///{db}", *WAYS[way]]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{way} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "run.json").read_text())["metrics"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name("runner").experiment_id])
    stages = sorted((m.step, int(m.value)) for m in
                    client.get_metric_history(run.info.run_id, "params/trainable"))
    return {"way": way, "accuracy": metrics["eval/accuracy"], "wall_s": wall,
            "trainable": max(v for _, v in stages), "stages": stages,
            "peak_rss_mb": metrics["system/peak_rss_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with train.tsv, "
                        "validation.tsv")
    parser.add_argument("--max-train-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    args = parser.parse_args()
    args.data = args.data.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        for way in args.ways:
            row = run_one(way, args, Path(tmp))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

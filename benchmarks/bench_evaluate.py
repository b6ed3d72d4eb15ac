"""Time `runner.evaluate` and `runner.predict` on a finished run, as a user runs them.

Trains MiniLM (head_only) on the bundled sentiment data with the bundled validation file
as its test split, then runs each command in its own process on the run directory and
prints wall time (imports included), rows per second, the test accuracy training logged,
evaluate's, and the accuracy of predict's labels on the same rows (all three must agree).

    python benchmarks/bench_evaluate.py [--epochs 1] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "src/runner/data/sample_data/sentiment"


def timed(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--work", help="directory for the run (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-evaluate-"))
    run_dir, test = work / "run", SAMPLE / "validation.jsonl"
    rows = [json.loads(line) for line in test.read_text().splitlines()]
    train_s, _ = timed("runner", "model=minilm", "head=seqcls", "freeze=head_only",
                       f"trainer.max_epochs={args.epochs}", f"data.test_file={test}",
                       f"trainer.output_dir={run_dir}",
                       f"logger.tracking_uri=sqlite:///{work / 'mlflow.db'}")
    trained = json.loads((run_dir / "run.json").read_text())["metrics"]["test/accuracy"]
    eval_s, out = timed("runner.evaluate", str(run_dir), "--json")
    evaluated = json.loads(out)["metrics"]["test/accuracy"]
    inputs = work / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in rows))
    predict_s, _ = timed("runner.predict", str(run_dir), "--input", str(inputs), "--output",
                         str(work / "predictions.jsonl"))
    predicted = [json.loads(line) for line in (work / "predictions.jsonl").open()]
    agree = sum(p["label"] == r["label"] for p, r in zip(predicted, rows, strict=True))
    print(f"train (with the test split scored): {train_s:.1f} s")
    print(f"evaluate: {eval_s:.1f} s for {len(rows)} rows ({len(rows) / eval_s:.0f} rows/s "
          "with imports)")
    print(f"predict:  {predict_s:.1f} s for {len(rows)} rows ({len(rows) / predict_s:.0f} "
          "rows/s with imports)")
    print(f"test/accuracy: training {trained:.4f}, evaluate {evaluated:.4f}, "
          f"predict's labels {agree / len(rows):.4f}")


if __name__ == "__main__":
    main()

"""`python -m runner.evaluate RUN_DIR [overrides]`: score a finished run's saved model on a
test split, with the run's own preprocessing and metrics.

The split is the run's data.test_file (or its hub dataset's test split), or the file an
override names (data.test_file=...). The metrics are printed and logged as test/* to the
run's own MLflow run, or with --new-run to a new run tagged runner.evaluation_of.
"""

from __future__ import annotations

import argparse
import json
import sys

from runner import console
from runner.cli import report_errors


def evaluate(run_dir: str, overrides: list[str], new_run: bool = False
             ) -> tuple[dict[str, float], str, str | None]:
    """(test/* metrics, where the split came from, the MLflow run they were logged to)."""
    from runner.saved_run import load_model, open_run, saved_labels

    run = open_run(run_dir, overrides)  # a bad directory is reported before torch loads
    from runner.data.split import load_test_split
    from runner.track import tags
    from runner.track.evaluation import log_test_metrics
    from runner.train.accelerator import fresh_accelerator
    from runner.train.run_file import write_run_file
    from runner.train.scoring import score, split_loader

    split, where = load_test_split(run.cfg, saved_labels(run.cfg))  # before the model loads
    task, model, _ = load_model(run)
    features = task.split_features(split)
    acc = fresh_accelerator(cpu=run.cfg.trainer.cpu)
    model = model.to(acc.device)
    loader = split_loader(task, model, features.validation, run.cfg.trainer.eval_batch_size,
                          acc)
    scored = score(model, task, loader, features, acc, desc="scoring")
    metrics = {f"{tags.TEST_PREFIX}{k}": v for k, v in scored.items()}
    logged = None
    uri, run_id = run.info.get("tracking_uri"), run.info.get("mlflow_run_id")
    if uri and run_id:
        logged = log_test_metrics(uri, run_id, metrics, where, new_run)
    if not new_run:  # run.json agrees with the run's MLflow record
        write_run_file(run.run_dir, metrics={**run.info.get("metrics", {}), **metrics},
                       test_split=where)
    return metrics, where, logged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m runner.evaluate",
        description="Score a finished run's saved model on a test split with the run's own "
        "preprocessing and metrics; print them and log them as test/* to the run's MLflow run.",
        epilog="example: python -m runner.evaluate outputs/2026-01-01/12-00-00 "
        "data.test_file=test.jsonl --new-run")
    parser.add_argument("run_dir", help="the directory the run trained into (run.json, "
                        "config.yaml, model/)")
    parser.add_argument("overrides", nargs="*", help="data.test_file=FILE, data.format=..., "
                        "data.columns.<role>=..., trainer.eval_batch_size=N, trainer.cpu=true")
    parser.add_argument("--new-run", action="store_true", help="log to a new MLflow run "
                        "tagged with the trained run's id, not to the trained run itself")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_intermixed_args(argv)
    console.setup()
    with report_errors():
        metrics, where, logged = evaluate(args.run_dir, args.overrides, args.new_run)
    if args.json:
        json.dump({"metrics": metrics, "split": where, "mlflow_run_id": logged}, sys.stdout,
                  indent=2)
        sys.stdout.write("\n")
        return
    print(f"scored {where}")
    for key, value in sorted(metrics.items()):
        print(f"  {key} = {value:.4f}")
    print(f"logged to MLflow run {logged}" if logged else
          "not logged to MLflow: the run was trained with logger=none")


if __name__ == "__main__":
    main()

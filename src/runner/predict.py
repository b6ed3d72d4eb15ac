"""`python -m runner.predict RUN_DIR --input FILE --output FILE.jsonl`: a finished run's
saved model on new rows, one JSON line per input row, in input order.

Classification: {"label", "score"} (regression: {"score"}); token classification:
{"tags"}, a tag per word; QA: {"answer", "start", "score"}; causal LM and seq2seq:
{"generated_text"}. Input files are read as training reads them (csv, tsv, json, jsonl,
parquet), with the head's input columns only (no labels needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from runner import console
from runner.cli import report_errors
from runner.errors import DataError


def predict_file(run_dir: str, input_path: str, output_path: str, overrides: list[str],
                 batch_size: int | None = None, max_new_tokens: int | None = None) -> int:
    """Write the predictions; the number of rows."""
    from runner.saved_run import load_model, open_run

    run = open_run(run_dir, overrides)  # a bad directory is reported before torch loads
    source, target = Path(input_path).expanduser().resolve(), Path(output_path).expanduser()
    if not source.is_file():
        what = "is a directory" if source.is_dir() else "does not exist"
        raise DataError(f"--input {source} {what}. Give a csv, tsv, json or jsonl file of "
                        "the rows to predict.")
    if not target.resolve().parent.is_dir():
        raise DataError(f"--output {target}: the directory {target.resolve().parent} does "
                        "not exist. Create it or write somewhere else.")
    from runner.data.split import read_rows
    from runner.files import atomic_write
    from runner.tasks.predict import INPUT_ROLES, predict

    rows, _ = read_rows(run.cfg, str(source), required=INPUT_ROLES[run.cfg.head.task])
    task, model, device = load_model(run)
    head = run.cfg.head
    predictions = predict(task, model, rows, batch_size or run.cfg.trainer.eval_batch_size,
                          device, max_new_tokens or head.max_target_length)
    lines = [json.dumps(p, ensure_ascii=False) for p in predictions]
    atomic_write(target, "".join(f"{line}\n" for line in lines))
    return len(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m runner.predict",
        description="Predict with a finished run's saved model: one JSON line per input row.",
        epilog="example: python -m runner.predict outputs/2026-01-01/12-00-00 "
        "--input reviews.csv --output predictions.jsonl data.columns.text=review")
    parser.add_argument("run_dir", help="the directory the run trained into (run.json, "
                        "config.yaml, model/)")
    parser.add_argument("--input", required=True, help="rows to predict (csv, tsv, json, "
                        "jsonl, parquet), with the head's input columns")
    parser.add_argument("--output", required=True, help="where to write the JSON lines")
    parser.add_argument("overrides", nargs="*", help="how to read the input: data.format=..., "
                        "data.header=false, data.column_names=[...], data.columns.<role>=...")
    parser.add_argument("--batch-size", type=int, help="rows per batch (default: the run's "
                        "trainer.eval_batch_size)")
    parser.add_argument("--max-new-tokens", type=int, help="causal LM / seq2seq: tokens to "
                        "generate (default: head.max_target_length)")
    args = parser.parse_intermixed_args(argv)
    for flag, value in (("--batch-size", args.batch_size), ("--max-new-tokens",
                                                             args.max_new_tokens)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1, not {value}")
    console.setup()
    with report_errors():
        count = predict_file(args.run_dir, args.input, args.output, args.overrides,
                             args.batch_size, args.max_new_tokens)
    print(f"wrote {count} predictions to {args.output}")


if __name__ == "__main__":
    main()

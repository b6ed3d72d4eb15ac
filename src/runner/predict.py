"""`python -m runner.predict RUN_DIR --input FILE --output FILE.jsonl`: a finished run's
saved model on new rows, one JSON line per input row, in input order.

Classification: {"label", "score"} (regression: {"score"}); token classification:
{"tags"}, a tag per word; QA: {"answer", "start", "score"} (SQuAD v2 runs: and
"no_answer", decided by the run's head.null_score_diff_threshold or
--null-score-diff-threshold); causal LM and seq2seq:
{"generated_text"}. Input files are read as training reads them (csv, tsv, json, jsonl,
parquet), with the head's input columns only (no labels needed).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from runner import console
from runner.cli import report_errors
from runner.errors import ConfigError, DataError, Problem


def predict_file(run_dir: str, input_path: str, output_path: str, overrides: list[str],
                 batch_size: int | None = None, max_new_tokens: int | None = None,
                 null_score_diff_threshold: float | None = None) -> int:
    """Write the predictions; the number of rows."""
    from runner.saved_run import load_model, open_run

    run = open_run(run_dir, overrides)  # a bad directory is reported before torch loads
    if null_score_diff_threshold is not None:
        _set_threshold(run.cfg, null_score_diff_threshold)
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


def _set_threshold(cfg, value: float) -> None:
    """--null-score-diff-threshold: only a SQuAD v2 QA run decides "no answer"."""
    head = cfg.head
    if head.task != "qa" or not head.version_2_with_negative:
        what = f"a {head.task} run" if head.task != "qa" else "a QA run trained without " \
            "head.version_2_with_negative"
        raise ConfigError([Problem(
            "--null-score-diff-threshold", f"{what} has no no-answer decision",
            "give it only for SQuAD v2 runs (head=qa head.version_2_with_negative=true)")])
    head.null_score_diff_threshold = value


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
    parser.add_argument("--null-score-diff-threshold", type=float, metavar="X",
                        help="SQuAD v2 QA runs: answer \"\" when the no-answer score beats "
                        "the best span's by more than X (default: the run's "
                        "head.null_score_diff_threshold; inf: always a span; write "
                        "negative values as --null-score-diff-threshold=-2)")
    args = parser.parse_intermixed_args(argv)
    if args.null_score_diff_threshold is not None and math.isnan(args.null_score_diff_threshold):
        parser.error("--null-score-diff-threshold must be a number, not nan")
    for flag, value in (("--batch-size", args.batch_size), ("--max-new-tokens",
                                                             args.max_new_tokens)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1, not {value}")
    console.setup()
    with report_errors():
        count = predict_file(args.run_dir, args.input, args.output, args.overrides,
                             args.batch_size, args.max_new_tokens,
                             args.null_score_diff_threshold)
    print(f"wrote {count} predictions to {args.output}")


if __name__ == "__main__":
    main()

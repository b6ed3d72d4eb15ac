"""`python -m runner.compare`: the runs of a sweep (or any runs) side by side, best first.

Reads the MLflow store the runner writes (runner.track.tags lists the names it relies on),
prints one table per objective (a sweep over heads has several: runs judged by different
metrics are never ranked together), each sorted best first, and draws a PNG with a row of
panels per objective: the objective against the swept values, and against the number of
trainable parameters.

    python -m runner.compare                      # the latest sweep (else the latest runs)
    python -m runner.compare --sweep <parent run id> --format json
    python -m runner.compare --runs <id> <id> --output cmp.png
    python -m runner.compare --group-by trainer.seed --only-differing

The parts: compare_select (which runs), compare_rows (a group per objective, best first),
compare_groupby (--group-by), compare_format (table, JSON, CSV), compare_plot (the PNG).
Only the standard library is imported up front, so `--help` is instant; mlflow and
matplotlib are imported when needed, torch and transformers never.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runner import console
from runner.errors import RunnerError
from runner.track import store
from runner.track.compare_format import csv_text, json_text, table_report
from runner.track.compare_groupby import group_by
from runner.track.compare_plot import default_plot_path, write_plot
from runner.track.compare_rows import grouped_rows
from runner.track.compare_select import (
    PLAIN_RUNS_LIMIT,
    CompareError,
    Selection,
    how_to_point,
    only_differing,
    select,
)

DEFAULT_EXPERIMENT = "runner"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runner.compare",
        description="Compare the runs of a sweep (or any runs) from the MLflow store: a table "
        "sorted by the objective, best first, and a PNG of the objective against the swept "
        "values and the trainable parameter count. Without --sweep or --runs: the latest "
        f"sweep, else the {PLAIN_RUNS_LIMIT} most recent runs.",
        epilog="examples: python -m runner.compare --sweep latest | "
        "python -m runner.compare --runs 1a2b... 3c4d... --format csv")
    p.add_argument("--tracking-uri", help="MLflow store; default $MLFLOW_TRACKING_URI, else "
                   "sqlite:///mlflow.db in the current directory (as `python -m runner`)")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                   help=f"MLflow experiment (default {DEFAULT_EXPERIMENT!r})")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sweep", metavar="PARENT_RUN_ID|latest",
                       help="a sweep's parent run id, or `latest`; compares its child runs")
    which.add_argument("--runs", nargs="+", metavar="ID", help="explicit run ids to compare")
    p.add_argument("--output", type=Path, help="PNG path (default ./compare-<sweep id or "
                   "'runs'>.png)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="what to print (default table); the PNG is written in every case")
    p.add_argument("--group-by", metavar="KEY",
                   help="the key runs were repeated over (e.g. trainer.seed): runs that "
                   "differ only in KEY share one row, with the mean ± sample std of each "
                   "metric and their count n")
    p.add_argument("--only-differing", action="store_true",
                   help="a column for every param that varies among the compared runs, "
                   "none for the params they share (default: the swept keys, or a few "
                   "short differing params)")
    return p


def selected(args: argparse.Namespace, uri: str) -> Selection:
    """The runs to compare, from a store that exists: looking never creates an empty one."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError  # a file that is no MLflow database

    path = store.local_store_path(uri)
    if path is not None and not path.exists():
        raise CompareError(f"no MLflow store at {path} (tracking URI {uri}); {how_to_point()}")
    try:
        with store.reading(uri):
            return select(args, uri)
    except (MlflowException, SQLAlchemyError) as err:
        reason = getattr(err, "message", None) or str(err).splitlines()[0]
        raise CompareError(f"cannot read the MLflow store at {uri}: {reason}; "
                           f"{how_to_point()}") from err


def compare(args: argparse.Namespace) -> tuple[str, Path]:
    """Everything but the printing: what to print, and where the plot went."""
    uri = store.resolve_uri(args.tracking_uri)
    selection = selected(args, uri)
    if args.only_differing:
        selection = only_differing(selection)
    groups = grouped_rows(selection)  # one per objective
    if args.group_by:
        groups, selection = group_by(groups, selection, args.group_by)
    plot = (args.output or default_plot_path(selection)).resolve()
    write_plot(groups, selection, plot)
    if args.format == "json":
        return json_text(groups, selection, uri, plot, args.group_by), plot
    if args.format == "csv":
        return csv_text(groups, selection, args.group_by), plot
    return table_report(groups, selection, uri, args.group_by), plot


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    console.setup()
    try:
        out, plot = compare(args)
    except RunnerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    print(out.rstrip("\n"))
    # csv and json keep stdout parseable: the plot's path goes to stderr (and into the json)
    if args.format == "table":
        print(f"\nplot: {plot}")
    else:
        print(f"plot: {plot}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""`python -m runner.compare`: the runs of a sweep (or any runs) side by side, best first.

Reads the MLflow store the runner writes (see runner.tracking for the tags and metrics it
relies on), prints one row per run sorted by the sweep's objective, and draws a PNG: the
objective against the swept values, and against the number of trainable parameters.

    python -m runner.compare                      # the latest sweep (else the latest runs)
    python -m runner.compare --sweep <parent run id> --format json
    python -m runner.compare --runs <id> <id> --output cmp.png

Only the standard library is imported up front, so `--help` is instant; mlflow and
matplotlib are imported when needed, torch and transformers never.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.errors import RunnerError

DEFAULT_EXPERIMENT = "runner"
LATEST = "latest"
PLAIN_RUNS_LIMIT = 50  # without a sweep: the most recent runs of the experiment
SEARCH_PAGE = 1000

# Tags and metrics written by runner.tracking and runner.sweep.
SWEEP_PARENT_TAG = "runner.sweep_parent"
SWEPT_KEYS_TAG = "runner.swept"  # on the parent: "key1,key2"
SWEPT_TAG_PREFIX = "runner.swept."  # on a child: one tag per swept key
PARENT_TAG = "mlflow.parentRunId"
OBJECTIVE_TAG = "runner.objective"
OBJECTIVE_MODE_TAG = "runner.objective_mode"
TRAINABLE = "params/trainable"
TOTAL = "params/total"
FRACTION = "params/trainable_fraction"
EVAL_PREFIX = "eval/"

# Plain runs have no swept keys: show the params that differ, but only a few short ones.
MAX_VARIED_COLUMNS = 4
MAX_VARIED_VALUE_LENGTH = 24
NOT_COMPARED_PARAMS = ("logger.", "inspect.", "trainer.output_dir", "trainer.resume",
                       "sweep.")
HEADLINE_PARAMS = ("model.family", "head.task", "freeze.strategy", "model.init",
                   "head.num_labels", "trainer.lr")
MAX_NAME_WIDTH = 48  # run names of sweep jobs carry every override; the columns say more


class CompareError(RunnerError):
    """Nothing to compare, or not where we looked: printed as `error: ...`, exit code 2."""


@dataclass(frozen=True)
class Objective:
    name: str | None  # e.g. eval/accuracy; None when no run says
    mode: str  # max | min

    def better_first(self, value: float | None) -> tuple[int, float]:
        """Sort key: runs with a value first, best value first."""
        if value is None:
            return (1, 0.0)
        return (0, -value if self.mode == "max" else value)


@dataclass
class Selection:
    """The runs to compare and what distinguishes them."""

    runs: list  # mlflow.entities.Run
    parent: Any | None = None  # the sweep's parent run
    label_keys: list[str] = field(default_factory=list)  # swept keys or differing params
    label_source: str = "swept"  # swept | params
    more_varied: list[str] = field(default_factory=list)  # differing params not shown
    experiment: str = ""  # the experiment(s) the runs belong to


@dataclass
class Row:
    run_id: str
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    labels: dict[str, str]
    metrics: dict[str, float]
    objective: float | None
    short_name: str = ""  # the name without the overrides every compared run shares

    @property
    def duration_s(self) -> float | None:
        if self.start_ms is None or self.end_ms is None:
            return None
        return (self.end_ms - self.start_ms) / 1000


# ------------------------------------------------------------------------------- store


def resolve_uri(flag: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else ./mlflow.db (as runner.tracking)."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"sqlite:///{(Path.cwd() / 'mlflow.db').resolve()}"
    if "://" not in uri and Path(uri).is_file():
        return f"sqlite:///{Path(uri).resolve()}"  # a path to mlflow.db itself
    return uri


def local_store_path(uri: str) -> Path | None:
    """The file or folder a local store lives in; None for remote stores."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        return None if path in ("", ":memory:") else Path(path)
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if "://" not in uri:
        return Path(uri)
    return None


def how_to_point() -> str:
    return ("run from the directory that holds mlflow.db (where you ran `python -m runner`), "
            "or pass --tracking-uri sqlite:////absolute/path/to/mlflow.db "
            "(or set MLFLOW_TRACKING_URI)")


def open_store(uri: str):
    """An MlflowClient on an existing store; never creates an empty one by looking."""
    path = local_store_path(uri)
    if path is not None and not path.exists():
        raise CompareError(f"no MLflow store at {path} (tracking URI {uri}); {how_to_point()}")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def find_experiment(client, name: str, uri: str):
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found
    experiments = client.search_experiments()
    if not any(_has_runs(client, e.experiment_id) for e in experiments):
        raise CompareError(f"the MLflow store at {uri} is empty: no runs recorded there; "
                           f"{how_to_point()}")
    names = ", ".join(sorted(e.name for e in experiments))
    raise CompareError(f"no experiment named {name!r} in {uri}; experiments there: {names}. "
                       "Pick one with --experiment NAME")


def _has_runs(client, experiment_id: str) -> bool:
    return bool(client.search_runs([experiment_id], max_results=1))


def search_all(client, experiment_ids: list[str], filter_string: str = "",
               order_by: list[str] | None = None) -> list:
    """Every matching run, page by page (nothing silently cut off)."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string,
                                  order_by=order_by, max_results=SEARCH_PAGE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def get_run(client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


# --------------------------------------------------------------------------- selection


def latest_sweep(client, experiment) -> Any | None:
    found = client.search_runs([experiment.experiment_id],
                               filter_string=f"tags.`{SWEEP_PARENT_TAG}` = 'true'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def sweep_selection(client, parent) -> Selection:
    parent_id = parent.info.run_id
    children = search_all(client, [parent.info.experiment_id],
                          filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                          order_by=["attributes.start_time ASC"])
    if not children:
        raise CompareError(f"sweep {parent_id} ({parent.info.run_name}) has no child runs: its "
                           "jobs have not started yet, or ran with logger=none")
    return Selection(children, parent, swept_keys(parent, children), "swept",
                     experiment=experiment_names(client, [parent]))


def swept_keys(parent, children: list) -> list[str]:
    """The parent's list of swept keys, in its order, plus any only a child carries."""
    keys = [k for k in parent.data.tags.get(SWEPT_KEYS_TAG, "").split(",") if k]
    for child in children:
        keys += [t[len(SWEPT_TAG_PREFIX):] for t in sorted(child.data.tags)
                 if t.startswith(SWEPT_TAG_PREFIX) and t[len(SWEPT_TAG_PREFIX):] not in keys]
    return keys


def sweep_by_id(client, run_id: str, uri: str) -> Selection:
    parent = get_run(client, run_id)
    if parent is None:
        raise CompareError(f"no run with id {run_id!r} in {uri} (--sweep takes a sweep's "
                           "parent run id, or `latest`)")
    if parent.data.tags.get(SWEEP_PARENT_TAG) != "true":
        hint = (f"; it is a job of sweep {parent.data.tags[PARENT_TAG]}: "
                f"use --sweep {parent.data.tags[PARENT_TAG]}"
                if PARENT_TAG in parent.data.tags else "; use --runs to compare plain runs")
        raise CompareError(f"run {run_id} is not a sweep parent run{hint}")
    return sweep_selection(client, parent)


def runs_by_id(client, run_ids: list[str], uri: str) -> Selection:
    runs = {run_id: get_run(client, run_id) for run_id in dict.fromkeys(run_ids)}
    unknown = [run_id for run_id, run in runs.items() if run is None]
    if unknown:
        raise CompareError(f"no run with id {', '.join(unknown)} in {uri}")
    selection = plain_selection(sorted(runs.values(), key=lambda r: r.info.start_time or 0))
    selection.experiment = experiment_names(client, selection.runs)
    return selection


def experiment_names(client, runs: list) -> str:
    ids = dict.fromkeys(run.info.experiment_id for run in runs)
    return ", ".join(client.get_experiment(i).name for i in ids)


def plain_selection(runs: list) -> Selection:
    keys = varied_params(runs)
    return Selection(runs, None, keys[:MAX_VARIED_COLUMNS], "params", keys[MAX_VARIED_COLUMNS:])


def varied_params(runs: list) -> list[str]:
    """Short params whose values differ between the runs, the telling ones first."""
    keys = {k for run in runs for k in run.data.params if not k.startswith(NOT_COMPARED_PARAMS)}
    varied = []
    for key in keys:
        values = [run.data.params.get(key) for run in runs]
        if len(set(values)) > 1 and all(len(v or "") <= MAX_VARIED_VALUE_LENGTH for v in values):
            varied.append(key)
    return sorted(varied, key=lambda k: (HEADLINE_PARAMS.index(k) if k in HEADLINE_PARAMS
                                         else len(HEADLINE_PARAMS), k.count("."), len(k), k))


def select(client, args, uri: str) -> Selection:
    if args.runs:
        return runs_by_id(client, args.runs, uri)
    if args.sweep and args.sweep != LATEST:
        return sweep_by_id(client, args.sweep, uri)
    experiment = find_experiment(client, args.experiment, uri)
    parent = latest_sweep(client, experiment)
    if parent is not None:
        return sweep_selection(client, parent)
    if args.sweep == LATEST:
        raise CompareError(f"no sweep in experiment {args.experiment!r} ({uri}): no run is "
                           f"tagged {SWEEP_PARENT_TAG}=true. Start one with "
                           "`python -m runner -m key=a,b`, or compare runs with --runs ID ...")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=PLAIN_RUNS_LIMIT)
    if not runs:
        raise CompareError(f"experiment {args.experiment!r} in {uri} has no runs")
    selection = plain_selection(list(reversed(runs)))
    selection.experiment = experiment.name
    return selection


# -------------------------------------------------------------------------------- rows


def objective_of(selection: Selection) -> Objective:
    """The parent's objective; for plain runs, the one most of them were run with."""
    sources = [selection.parent] if selection.parent is not None else selection.runs
    named = [r.data.tags for r in sources if r.data.tags.get(OBJECTIVE_TAG)]
    if not named:
        return Objective(None, "max")
    names = [t[OBJECTIVE_TAG] for t in named]
    name = max(dict.fromkeys(names), key=names.count)
    mode = next(t.get(OBJECTIVE_MODE_TAG) for t in named if t[OBJECTIVE_TAG] == name)
    if mode not in ("max", "min"):
        mode = "min" if any(w in name for w in ("loss", "perplexity", "mse")) else "max"
    return Objective(name, mode)


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_row(run, selection: Selection, objective: Objective) -> Row:
    info, data = run.info, run.data
    if selection.label_source == "swept":
        labels = {k: data.tags.get(SWEPT_TAG_PREFIX + k, "-") for k in selection.label_keys}
    else:
        labels = {k: data.params.get(k, "-") for k in selection.label_keys}
    value = data.metrics.get(objective.name) if objective.name else None
    name = data.tags.get("runner.name") or info.run_name or info.run_id  # full, untruncated
    return Row(info.run_id, name, info.status, info.start_time,
               info.end_time, labels, dict(data.metrics), finite(value))


def distinct_names(names: list[str]) -> list[str]:
    """Drop from `base[override,...]` run names the overrides all of them share: a sweep's
    jobs are named with every override, and only the differing ones tell them apart."""
    parsed = [re.fullmatch(r"(.*?)\[(.*)\]", name) for name in names]
    if len(names) < 2 or not all(parsed):
        return names
    items = [m.group(2).split(",") for m in parsed]
    shared = set.intersection(*(set(i) for i in items))
    shortened = []
    for match, own in zip(parsed, items, strict=True):
        rest = [i for i in own if i not in shared]
        shortened.append(f"{match.group(1)}[{','.join(rest)}]" if rest else match.group(1))
    return shortened


def sorted_rows(selection: Selection, objective: Objective) -> list[Row]:
    rows = [to_row(run, selection, objective) for run in selection.runs]
    for row, name in zip(rows, distinct_names([r.name for r in rows]), strict=True):
        row.short_name = name
    # runs arrive oldest first; sorted() is stable, so ties keep that order
    return sorted(rows, key=lambda r: objective.better_first(r.objective))


def eval_columns(rows: list[Row], objective: Objective) -> list[str]:
    names = {k for row in rows for k in row.metrics if k.startswith(EVAL_PREFIX)}
    return sorted(names - {objective.name})


# -------------------------------------------------------------------------- formatting


def fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{int(round(value)):,}"


def fmt_metric(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def fmt_fraction(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.4g}%"


def fmt_duration(row: Row) -> str:
    if row.end_ms is None:
        return "running" if row.status == "RUNNING" else "-"
    seconds = row.duration_s or 0.0
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def text_table(headers: list[str], cells: list[list[str]], numeric: set[int]) -> str:
    """Columns padded to width; numbers right-aligned, text left-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        padded = [v.rjust(w) if i in numeric else v.ljust(w)
                  for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def table_text(rows: list[Row], selection: Selection, objective: Objective) -> str:
    evals = eval_columns(rows, objective)
    headers = ["#", "run", *selection.label_keys, "trainable", "trainable %",
               objective.name or "objective", *evals, "status", "duration"]
    first_number = 2 + len(selection.label_keys)
    numeric = {0, *range(first_number, first_number + 3 + len(evals)), len(headers) - 1}
    numeric |= {2 + i for i, k in enumerate(selection.label_keys)
                if all(is_number(r.labels[k]) for r in rows)}
    cells = [[str(rank), shorten(row.short_name or row.name, MAX_NAME_WIDTH), *row.labels.values(),
              fmt_count(row.metrics.get(TRAINABLE)), fmt_fraction(row.metrics.get(FRACTION)),
              fmt_metric(row.objective), *(fmt_metric(row.metrics.get(k)) for k in evals),
              row.status, fmt_duration(row)]
             for rank, row in enumerate(rows, 1)]
    return text_table(headers, cells, numeric)


def heading(selection: Selection, objective: Objective, uri: str) -> str:
    if selection.parent is not None:
        name = shorten(selection.parent.info.run_name or "", 100)
        what = f"sweep {selection.parent.info.run_id} ({name})"
    else:
        what = f"{len(selection.runs)} runs"
    goal = f"{objective.name} ({objective.mode}), best first" if objective.name else "no objective"
    return f"{what} in {selection.experiment} at {uri}\nobjective: {goal}"


def iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def row_record(row: Row) -> dict[str, Any]:
    return {
        "run_id": row.run_id, "run_name": row.name, "status": row.status,
        "values": row.labels,
        # NaN is not JSON: a diverged metric reads null
        "trainable": finite(row.metrics.get(TRAINABLE)), "total": finite(row.metrics.get(TOTAL)),
        "trainable_fraction": finite(row.metrics.get(FRACTION)),
        "objective": row.objective,
        "eval": {k: finite(v) for k, v in sorted(row.metrics.items())
                 if k.startswith(EVAL_PREFIX)},
        "start_time": iso(row.start_ms), "duration_s": row.duration_s,
    }


def json_text(rows: list[Row], selection: Selection, objective: Objective, uri: str,
              plot: Path) -> str:
    doc = {
        "tracking_uri": uri,
        "experiment": selection.experiment,
        "sweep": selection.parent.info.run_id if selection.parent is not None else None,
        "objective": {"name": objective.name, "mode": objective.mode},
        "keys": selection.label_keys,
        "keys_source": selection.label_source,
        "runs": [row_record(row) for row in rows],
        "plot": str(plot),
    }
    return json.dumps(doc, indent=2, allow_nan=False)


def csv_text(rows: list[Row], selection: Selection, objective: Objective) -> str:
    evals = eval_columns(rows, objective)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run_id", "run_name", *selection.label_keys, TRAINABLE, TOTAL, FRACTION,
                     objective.name or "objective", *evals, "status", "start_time",
                     "duration_s"])
    for row in rows:
        writer.writerow([row.run_id, row.name, *row.labels.values(),
                         *(row.metrics.get(k) for k in (TRAINABLE, TOTAL, FRACTION)),
                         row.objective, *(row.metrics.get(k) for k in evals), row.status,
                         iso(row.start_ms), row.duration_s])
    return buffer.getvalue()


# -------------------------------------------------------------------------------- plot


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def short_key(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def point_label(row: Row) -> str:
    if row.labels:
        return ", ".join(f"{short_key(k)}={v}" for k, v in row.labels.items())
    return shorten(row.short_name or row.name, 30)


def value_order(row: Row, keys: list[str]) -> tuple:
    """Sort key for a row's values: numbers by value, before text; else by run name."""
    if not keys:
        return ((1, 0.0, row.name),)
    return tuple((0, float(v), "") if is_number(v) else (1, 0.0, v)
                 for v in (row.labels[k] for k in keys))


def plot_against_values(ax, rows: list[Row], keys: list[str], objective: Objective) -> None:
    """(1) the objective against the swept value: a numeric axis when it can be one."""
    scored = [r for r in rows if r.objective is not None]
    single = keys[0] if len(keys) == 1 else None
    if single and scored and all(is_number(r.labels[single]) for r in scored):
        def x_of(row: Row) -> float:
            return float(row.labels[single])

        points = sorted((x_of(r), r.objective) for r in scored)
        ax.plot([x for x, _ in points], [y for _, y in points], "o-")
        if points[0][0] > 0 and points[-1][0] / points[0][0] >= 100:
            ax.set_xscale("log")  # learning rates and the like span decades
        elif all(x.is_integer() for x, _ in points):
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no 2.5 labels
        ax.set_xlabel(single)
    else:
        # one tick per value combination, in the values' natural order; runs may share one
        by_label = {point_label(r): value_order(r, keys) for r in rows}
        categories = sorted(by_label, key=by_label.__getitem__)

        def x_of(row: Row) -> float:
            return categories.index(point_label(row))

        ax.plot([x_of(r) for r in scored], [r.objective for r in scored], "o")
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels([shorten(c, 30) for c in categories], rotation=30, ha="right",
                           fontsize=8)
        ax.set_xlabel(", ".join(keys) if keys else "run")
    if scored:  # rows come best first
        ax.plot([x_of(scored[0])], [scored[0].objective], "*", markersize=16, color="tab:red",
                label="best")
        ax.legend(fontsize=8)
    ax.set_ylabel(objective.name or "objective")
    missing = len(rows) - len(scored)
    note = f" ({missing} without a value not shown)" if missing else ""
    ax.set_title(f"{objective.name or 'objective'} ({objective.mode}){note}", fontsize=10)
    ax.grid(True, alpha=0.3)


def plot_against_trainable(ax, rows: list[Row], objective: Objective) -> None:
    """(2) what each run trained (log scale) against what it scored."""
    points = [r for r in rows if r.objective is not None and (r.metrics.get(TRAINABLE) or 0) > 0]
    if not points:
        ax.text(0.5, 0.5, f"no run has both {TRAINABLE} and {objective.name}",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    xs, ys = [r.metrics[TRAINABLE] for r in points], [r.objective for r in points]
    ax.scatter(xs, ys)
    ax.scatter(xs[:1], ys[:1], marker="*", s=200, color="tab:red", label="best", zorder=3)
    for row, x, y in zip(points, xs, ys, strict=True):
        ax.annotate(shorten(point_label(row), 40), (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.1)  # room for the labels of the outermost points
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel(objective.name or "objective")
    ax.set_title("objective vs trainable parameters", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)


def write_plot(rows: list[Row], selection: Selection, objective: Objective, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    plot_against_values(left, rows, selection.label_keys, objective)
    plot_against_trainable(right, rows, objective)
    title = (selection.parent.info.run_name or selection.parent.info.run_id
             if selection.parent is not None else f"{len(rows)} runs")
    fig.suptitle(shorten(title, 120), fontsize=11)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except OSError as err:
        raise CompareError(f"cannot write the plot to {path}: {err}; choose another place "
                           "with --output PATH.png") from err
    finally:
        plt.close(fig)


def default_plot_path(selection: Selection) -> Path:
    name = selection.parent.info.run_id if selection.parent is not None else "runs"
    return Path.cwd() / f"compare-{name}.png"


# --------------------------------------------------------------------------------- CLI


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
    return p


def compare(args: argparse.Namespace) -> tuple[str, Path]:
    """Everything but the printing: what to print, and where the plot went."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError  # a file that is no MLflow database

    uri = resolve_uri(args.tracking_uri)
    try:
        client = open_store(uri)
        selection = select(client, args, uri)
    except (MlflowException, SQLAlchemyError) as err:
        reason = getattr(err, "message", None) or str(err).splitlines()[0]
        raise CompareError(f"cannot read the MLflow store at {uri}: {reason}; "
                           f"{how_to_point()}") from err
    objective = objective_of(selection)
    rows = sorted_rows(selection, objective)
    plot = (args.output or default_plot_path(selection)).resolve()
    write_plot(rows, selection, objective, plot)
    if args.format == "json":
        return json_text(rows, selection, objective, uri, plot), plot
    if args.format == "csv":
        return csv_text(rows, selection, objective), plot
    parts = [heading(selection, objective, uri), "",
             table_text(rows, selection, objective)]
    if selection.more_varied:
        parts.append(f"(also differing: {', '.join(selection.more_varied)})")
    return "\n".join(parts) + "\n", plot


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
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

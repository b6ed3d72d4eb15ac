"""What `runner.compare` prints: a text table per objective, JSON or CSV of the rows."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.track import tags
from runner.track.compare_rows import Group, Objective, eval_columns, finite
from runner.track.compare_select import Row, Selection

MAX_NAME_WIDTH = 48  # run names of sweep jobs carry every override; the columns say more
COUNTS = (tags.TRAINABLE, tags.TOTAL, tags.FRACTION)


def fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{int(round(value)):,}"


def fmt_metric(value: float | None, std: float | None = None) -> str:
    """A value, with `± std` when it is the mean of grouped runs."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}" if std is None else f"{value:.4g} ± {std:.2g}"


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


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------ table


def text_table(headers: list[str], cells: list[list[str]], numeric: set[int]) -> str:
    """Columns padded to width; numbers right-aligned, text left-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        padded = [v.rjust(w) if i in numeric else v.ljust(w)
                  for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def table_text(rows: list[Row], selection: Selection, objective: Objective,
               grouped: bool = False) -> str:
    evals = eval_columns(rows, objective)
    counted = ["n"] if grouped else []  # --group-by: how many runs each row stands for
    headers = ["#", "run", *counted, *selection.label_keys, "trainable", "trainable %",
               objective.name or "objective", *evals, "status", "duration"]
    first_number = 2 + len(counted) + len(selection.label_keys)
    numeric = {0, *range(first_number, first_number + 3 + len(evals)), len(headers) - 1}
    numeric |= {2 + len(counted) + i for i, k in enumerate(selection.label_keys)
                if all(is_number(r.labels[k]) for r in rows)}
    numeric |= {2} if grouped else set()
    cells = [[str(rank), shorten(row.short_name or row.name, MAX_NAME_WIDTH),
              *([str(row.n)] if grouped else []), *row.labels.values(),
              fmt_count(row.metrics.get(tags.TRAINABLE)),
              fmt_fraction(row.metrics.get(tags.FRACTION)),
              fmt_metric(row.objective, row.spread.get("objective")),
              *(fmt_metric(row.metrics.get(k), row.spread.get(k)) for k in evals),
              row.status, fmt_duration(row)]
             for rank, row in enumerate(rows, 1)]
    return text_table(headers, cells, numeric)


def heading(selection: Selection, uri: str, grouped_by: str | None = None) -> str:
    if selection.parent is not None:
        name = shorten(selection.parent.name, 100)
        what = f"sweep {selection.parent.run_id} ({name})"
    else:
        what = f"{len(selection.runs)} runs"
    line = f"{what} in {selection.experiment} at {uri}"
    if grouped_by:
        line += (f"\ngrouped over {grouped_by}: runs alike in everything else share a row, "
                 "mean ± sample std of n runs")
    return line


def on_front(row: Row) -> bool | None:
    """Whether the run is on its multi-objective study's Pareto front (None: no such study)."""
    mark = row.tags.get(tags.PARETO)
    return None if mark is None else mark == "true"


def pareto_line(rows: list[Row]) -> str | None:
    front = [f"#{rank} {shorten(row.short_name or row.name, 40)}"
             for rank, row in enumerate(rows, 1) if on_front(row)]
    return f"Pareto front ({len(front)} runs): {'; '.join(front)}" if front else None


def goal(group: Group) -> str:
    return f"objective: {group.title}, best first" if group.objective.name else (
        "objective: none recorded")


def table_report(groups: list[Group], selection: Selection, uri: str,
                 grouped_by: str | None = None) -> str:
    """One table per objective: runs judged by different metrics are never ranked together."""
    parts = [heading(selection, uri, grouped_by)]
    for group in groups:
        parts += ["", goal(group),
                  table_text(group.rows, selection, group.objective, grouped_by is not None)]
        front = pareto_line(group.rows)
        if front:
            parts.append(front)
    if selection.more_varied:
        parts.append(f"(also differing: {', '.join(selection.more_varied)})")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------- json, csv


def iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def row_record(row: Row, objective: Objective) -> dict[str, Any]:
    grouped = {"n": row.n, "run_ids": row.members, "grouped_values": row.grouped_values,
               "objective_std": row.spread.get("objective"),
               "eval_std": {k: v for k, v in sorted(row.spread.items())
                            if k.startswith(tags.EVAL_PREFIX)}} if row.members else {}
    return {
        "run_id": row.run_id, "run_name": row.name, "status": row.status,
        "objective_name": objective.name, "values": row.labels,
        # NaN is not JSON: a diverged metric reads null
        "trainable": finite(row.metrics.get(tags.TRAINABLE)),
        "total": finite(row.metrics.get(tags.TOTAL)),
        "trainable_fraction": finite(row.metrics.get(tags.FRACTION)),
        "objective": row.objective,
        "eval": {k: finite(v) for k, v in sorted(row.metrics.items())
                 if k.startswith(tags.EVAL_PREFIX)},
        "start_time": iso(row.start_ms), "duration_s": row.duration_s,
        **grouped,
        "pareto": on_front(row),
    }


def objective_record(objective: Objective) -> dict[str, Any]:
    return {"name": objective.name, "mode": objective.mode}


def json_text(groups: list[Group], selection: Selection, uri: str, plot: Path,
              grouped_by: str | None = None) -> str:
    """`groups`: one per objective, each best first; `runs`: all of them, group by group
    (`objective` names the one objective, null when the runs have several)."""
    doc = {
        "tracking_uri": uri,
        "experiment": selection.experiment,
        "sweep": selection.parent.run_id if selection.parent is not None else None,
        "objective": objective_record(groups[0].objective) if len(groups) == 1 else None,
        "keys": selection.label_keys,
        "keys_source": selection.label_source,
        "grouped_by": grouped_by,
        "groups": [{"objective": objective_record(g.objective), "head": g.head,
                    "runs": [row_record(row, g.objective) for row in g.rows]} for g in groups],
        "runs": [row_record(row, g.objective) for g in groups for row in g.rows],
        "plot": str(plot),
    }
    return json.dumps(doc, indent=2, allow_nan=False)


def csv_text(groups: list[Group], selection: Selection, grouped_by: str | None = None) -> str:
    """One row per run (or --group-by row), group by group: `objective` names the metric the
    row is judged by and `objective_value` holds its value; every eval metric has a column."""
    rows = [row for group in groups for row in group.rows]
    evals = eval_columns(rows, Objective(None, "max"))
    spread = ["n", "objective_std", *(f"{k}_std" for k in evals)] if grouped_by else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run_id", "run_name", "objective", "objective_mode",
                     *selection.label_keys, *COUNTS, "objective_value", *evals, *spread,
                     "status", "start_time", "duration_s"])
    for group in groups:
        for row in group.rows:
            stds = ([row.n, row.spread.get("objective"), *(row.spread.get(k) for k in evals)]
                    if grouped_by else [])
            writer.writerow([row.run_id, row.name, group.objective.name, group.objective.mode,
                             *row.labels.values(), *(row.metrics.get(k) for k in COUNTS),
                             row.objective, *(row.metrics.get(k) for k in evals), *stds,
                             row.status, iso(row.start_ms), row.duration_s])
    return buffer.getvalue()

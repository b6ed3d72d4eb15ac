"""What `runner.compare` prints: a text table, JSON or CSV of the rows."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.track import tags
from runner.track.compare_rows import Objective, eval_columns, finite
from runner.track.compare_select import Row, Selection

MAX_NAME_WIDTH = 48  # run names of sweep jobs carry every override; the columns say more
COUNTS = (tags.TRAINABLE, tags.TOTAL, tags.FRACTION)


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


def table_text(rows: list[Row], selection: Selection, objective: Objective) -> str:
    evals = eval_columns(rows, objective)
    headers = ["#", "run", *selection.label_keys, "trainable", "trainable %",
               objective.name or "objective", *evals, "status", "duration"]
    first_number = 2 + len(selection.label_keys)
    numeric = {0, *range(first_number, first_number + 3 + len(evals)), len(headers) - 1}
    numeric |= {2 + i for i, k in enumerate(selection.label_keys)
                if all(is_number(r.labels[k]) for r in rows)}
    cells = [[str(rank), shorten(row.short_name or row.name, MAX_NAME_WIDTH), *row.labels.values(),
              fmt_count(row.metrics.get(tags.TRAINABLE)),
              fmt_fraction(row.metrics.get(tags.FRACTION)),
              fmt_metric(row.objective), *(fmt_metric(row.metrics.get(k)) for k in evals),
              row.status, fmt_duration(row)]
             for rank, row in enumerate(rows, 1)]
    return text_table(headers, cells, numeric)


def heading(selection: Selection, objective: Objective, uri: str) -> str:
    if selection.parent is not None:
        name = shorten(selection.parent.name, 100)
        what = f"sweep {selection.parent.run_id} ({name})"
    else:
        what = f"{len(selection.runs)} runs"
    goal = f"{objective.name} ({objective.mode}), best first" if objective.name else "no objective"
    return f"{what} in {selection.experiment} at {uri}\nobjective: {goal}"


def on_front(row: Row) -> bool | None:
    """Whether the run is on its multi-objective study's Pareto front (None: no such study)."""
    mark = row.tags.get(tags.PARETO)
    return None if mark is None else mark == "true"


def pareto_line(rows: list[Row]) -> str | None:
    front = [f"#{rank} {shorten(row.short_name or row.name, 40)}"
             for rank, row in enumerate(rows, 1) if on_front(row)]
    return f"Pareto front ({len(front)} runs): {'; '.join(front)}" if front else None


def table_report(rows: list[Row], selection: Selection, objective: Objective, uri: str) -> str:
    parts = [heading(selection, objective, uri), "", table_text(rows, selection, objective)]
    front = pareto_line(rows)
    if front:
        parts.append(front)
    if selection.more_varied:
        parts.append(f"(also differing: {', '.join(selection.more_varied)})")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------- json, csv


def iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def row_record(row: Row) -> dict[str, Any]:
    return {
        "run_id": row.run_id, "run_name": row.name, "status": row.status,
        "values": row.labels,
        # NaN is not JSON: a diverged metric reads null
        "trainable": finite(row.metrics.get(tags.TRAINABLE)),
        "total": finite(row.metrics.get(tags.TOTAL)),
        "trainable_fraction": finite(row.metrics.get(tags.FRACTION)),
        "objective": row.objective,
        "eval": {k: finite(v) for k, v in sorted(row.metrics.items())
                 if k.startswith(tags.EVAL_PREFIX)},
        "start_time": iso(row.start_ms), "duration_s": row.duration_s,
        "pareto": on_front(row),
    }


def json_text(rows: list[Row], selection: Selection, objective: Objective, uri: str,
              plot: Path) -> str:
    doc = {
        "tracking_uri": uri,
        "experiment": selection.experiment,
        "sweep": selection.parent.run_id if selection.parent is not None else None,
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
    writer.writerow(["run_id", "run_name", *selection.label_keys, *COUNTS,
                     objective.name or "objective", *evals, "status", "start_time",
                     "duration_s"])
    for row in rows:
        writer.writerow([row.run_id, row.name, *row.labels.values(),
                         *(row.metrics.get(k) for k in COUNTS),
                         row.objective, *(row.metrics.get(k) for k in evals), row.status,
                         iso(row.start_ms), row.duration_s])
    return buffer.getvalue()

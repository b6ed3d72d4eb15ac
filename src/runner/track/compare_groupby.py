"""`runner.compare --group-by KEY`: runs that differ only in KEY (seeds, typically) become
one row with the mean and sample standard deviation of each metric, and their count."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import replace

from runner.track import tags
from runner.track.compare_rows import Group
from runner.track.compare_select import NOT_COMPARED_PARAMS, CompareError, Row, Selection


def value_of(run: Row, key: str) -> str | None:
    """The run's value of KEY: its swept value, else its param."""
    return run.tags.get(tags.swept(key), run.params.get(key))


def check_key(selection: Selection, key: str) -> None:
    """KEY must be something the compared runs record, else nothing could be grouped."""
    if any(value_of(run, key) is not None for run in selection.runs):
        return
    known = sorted({k for run in selection.runs for k in run.params
                    if not k.startswith(NOT_COMPARED_PARAMS)})
    seeds = [k for k in known if k.endswith("seed")]
    raise CompareError(f"--group-by {key}: no compared run records {key!r} (as a param or "
                       f"a swept value); group by one of their params, e.g. "
                       f"--group-by {(seeds or known or ['trainer.seed'])[0]}")


def _part_of_key(param: str, key: str) -> bool:
    return param == key or param.startswith(key + ".")  # a group choice (freeze) and its keys


def identity(run: Row, varied: list[str]) -> tuple:
    """What a run is, apart from KEY: its values of every other param that varies."""
    return tuple(run.params.get(k) for k in varied)


def collapse(group: Group, selection: Selection, key: str) -> Group:
    """The group's rows, those equal in everything but KEY merged into one, best first."""
    params = {k for run in selection.runs for k in run.params
              if not k.startswith(NOT_COMPARED_PARAMS) and not _part_of_key(k, key)}
    varied = sorted(k for k in params if len({r.params.get(k) for r in selection.runs}) > 1)
    alike: dict[tuple, list[Row]] = {}
    for row in group.rows:
        alike.setdefault(identity(row, varied), []).append(row)
    rows = [merged(members, key) for members in alike.values()]
    objective = group.objective
    return Group(objective, sorted(rows, key=lambda r: objective.better_first(r.objective)),
                 group.head)


def _mean_and_spread(values: list[float]) -> tuple[float | None, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else None


def merged(members: list[Row], key: str) -> Row:
    """One row for runs alike but for KEY: mean metrics, their spread, n."""
    first = members[0]
    metrics, spread = {}, {}
    for name in dict.fromkeys(k for row in members for k in row.metrics):
        mean, std = _mean_and_spread([row.metrics.get(name) for row in members])
        if mean is not None:
            metrics[name] = mean
        if std is not None:
            spread[name] = std
    objective, objective_std = _mean_and_spread([row.objective for row in members])
    if objective_std is not None:
        spread["objective"] = objective_std
    statuses = [row.status for row in members]
    status = statuses[0] if len(set(statuses)) == 1 else ",".join(
        f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    durations = [row.duration_s for row in members if row.duration_s is not None]
    end = (None if not durations or first.start_ms is None
           else first.start_ms + round(1000 * statistics.fmean(durations)))
    labels = {k: v for k, v in first.labels.items() if k != key}
    return replace(first, name=_without(first.name, key),
                   short_name=_without(first.short_name or first.name, key), status=status,
                   end_ms=end, labels=labels, metrics=metrics, objective=objective,
                   n=len(members), spread=spread, members=[row.run_id for row in members],
                   grouped_values=[str(value_of(row, key)) for row in members])


def _without(name: str, key: str) -> str:
    """A run name `base[a=1,key=2]` without the grouped key's override."""
    name = re.sub(rf"(?<=[\[,]){re.escape(key)}=[^,\]]*,?", "", name)
    return name.replace(",]", "]").replace("[]", "")


def group_by(groups: list[Group], selection: Selection, key: str
             ) -> tuple[list[Group], Selection]:
    """The collapsed groups, and the selection without KEY among its columns."""
    check_key(selection, key)
    collapsed = [collapse(group, selection, key) for group in groups]
    return collapsed, replace(selection, label_keys=[k for k in selection.label_keys
                                                     if k != key])

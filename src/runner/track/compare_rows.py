"""The compared runs in one group per objective, each ranked by it, best first.

Runs judged by different metrics (a sweep over heads: accuracy for a classifier, F1 for
QA) are never ranked against each other: each run's own runner.objective tag says which
group it belongs to. A metric name several heads report (tokencls's entity F1 and qa's
answer F1 are both eval/f1) gets a group per head, as the sweep's parent keeps them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from runner.track import tags
from runner.track.compare_select import Row, Selection

MODES = ("max", "min")


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
class Group:
    """The runs judged by one objective, best first."""

    objective: Objective
    rows: list[Row] = field(default_factory=list)
    head: str | None = None  # set when heads share the objective's name, one group each

    @property
    def title(self) -> str:
        name = self.objective.name or "no objective recorded"
        head = f" of head {self.head}" if self.head else ""
        return f"{name} ({self.objective.mode}){head}"


def objective_of(selection: Selection) -> Objective:
    """For runs that do not say: the parent's (first) objective; for plain runs, the one
    most of them were run with."""
    sources = [selection.parent] if selection.parent is not None else selection.runs
    named = [r.tags for r in sources if r.tags.get(tags.OBJECTIVE)]
    if not named:
        return Objective(None, "max")
    names = [t[tags.OBJECTIVE].split(",")[0] for t in named]  # a mixed sweep lists them all
    name = max(dict.fromkeys(names), key=names.count)
    first = next(t for t in named if t[tags.OBJECTIVE].split(",")[0] == name)
    return Objective(name, recorded_mode({**first, tags.OBJECTIVE: name}))


def run_objective(run: Row, fallback: Objective) -> Objective:
    """The objective a run was judged by (its runner.objective tag), else `fallback`."""
    name = run.tags.get(tags.OBJECTIVE)
    return Objective(name, recorded_mode(run.tags)) if name else fallback


def grouped_rows(selection: Selection) -> list[Group]:
    """One group per objective, in the order the objectives first appear, each best first."""
    fallback = objective_of(selection)
    heads: dict[Objective, set] = {}
    for run in selection.runs:
        heads.setdefault(run_objective(run, fallback), set()).add(run.tags.get(tags.HEAD))
    by_key: dict[tuple[Objective, str | None], list[Row]] = {}
    for run in selection.runs:
        objective = run_objective(run, fallback)
        head = run.tags.get(tags.HEAD) if len(heads[objective]) > 1 else None
        by_key.setdefault((objective, head), []).append(run)
    groups = [Group(objective, sorted_rows(Selection(runs, selection.parent,
                                                     selection.label_keys,
                                                     selection.label_source), objective),
                    head)
              for (objective, head), runs in by_key.items()]
    rows = [row for group in groups for row in group.rows]  # names shortened across groups
    for row, name in zip(rows, distinct_names([r.name for r in rows]), strict=True):
        row.short_name = name
    return groups


def recorded_mode(run_tags: dict[str, str]) -> str:
    """The direction the run recorded (runner.objective_mode). Runs that predate the tag:
    the mode the task registry gives the metric, as runner.config.defaults.objective does."""
    mode = run_tags.get(tags.OBJECTIVE_MODE)
    if mode in MODES:
        return mode
    from runner.config.tasks import TASKS

    metric = run_tags[tags.OBJECTIVE].removeprefix(tags.EVAL_PREFIX)
    head = TASKS.get(run_tags.get(tags.HEAD, ""))
    specs = [head] if head is not None else list(TASKS.values())
    known = [m for spec in specs for m in (*spec.metrics, *spec.regression_metrics)
             if m.name == metric]
    return known[0].mode if known else "max"


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def ranked(run: Row, selection: Selection, objective: Objective) -> Row:
    """The run with what tells it apart from the others, and its objective."""
    if selection.label_source == "swept":
        labels = {k: run.tags.get(tags.swept(k), "-") for k in selection.label_keys}
    else:
        labels = {k: run.params.get(k, "-") for k in selection.label_keys}
    value = run.metrics.get(objective.name) if objective.name else None
    return replace(run, labels=labels, objective=finite(value))


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
    rows = [ranked(run, selection, objective) for run in selection.runs]
    for row, name in zip(rows, distinct_names([r.name for r in rows]), strict=True):
        row.short_name = name
    # runs arrive oldest first; sorted() is stable, so ties keep that order
    return sorted(rows, key=lambda r: objective.better_first(r.objective))


def eval_columns(rows: list[Row], objective: Objective) -> list[str]:
    names = {k for row in rows for k in row.metrics if k.startswith(tags.EVAL_PREFIX)}
    return sorted(names - {objective.name})

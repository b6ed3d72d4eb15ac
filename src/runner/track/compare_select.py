"""Which runs `runner.compare` shows: a sweep's children, runs by id, or the latest runs.

Runs are read with `mlflow.search_runs` (one DataFrame per query, paged by MLflow) and
turned into `Row`s; the store is the one `runner.track.store.reading` points
MLflow at. mlflow is imported inside the functions, so `--help` stays instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runner.errors import RunnerError
from runner.track import tags

LATEST = "latest"
PLAIN_RUNS_LIMIT = 50  # without a sweep: the most recent runs of the experiment
RUN_ID = re.compile(r"[\w-]+")  # anything else cannot be a run id (and would break a filter)

# Plain runs have no swept keys: show the params that differ, but only a few short ones.
MAX_VARIED_COLUMNS = 4
MAX_VARIED_VALUE_LENGTH = 24
NOT_COMPARED_PARAMS = ("logger.", "inspect.", "trainer.output_dir", "trainer.resume",
                       "sweep.")
HEADLINE_PARAMS = ("model.family", "head.task", "freeze.strategy", "model.init",
                   "head.num_labels", "trainer.lr")


class CompareError(RunnerError):
    """Nothing to compare, or not where we looked: printed as `error: ...`, exit code 2."""


@dataclass
class Row:
    """One compared run: what the store holds of it (a row of the DataFrame
    `mlflow.search_runs` returns, missing values left out), and once the runs are ranked
    (runner.track.compare_rows) what the table shows of it."""

    run_id: str
    name: str  # runner.name (the full name), else MLflow's run name, else the id
    status: str
    start_ms: int | None
    end_ms: int | None
    labels: dict[str, str]  # the swept values or the differing params; set when ranked
    metrics: dict[str, float]
    objective: float | None  # set when ranked
    short_name: str = ""  # the name without the overrides every compared run shares
    experiment_id: str = ""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # --group-by: a row standing for n runs that differ only in the grouped key; metrics
    # hold their means, spread the sample standard deviations (n >= 2 values)
    n: int = 1
    spread: dict[str, float] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)  # their run ids
    grouped_values: list[str] = field(default_factory=list)  # their values of the key

    @property
    def duration_s(self) -> float | None:
        if self.start_ms is None or self.end_ms is None:
            return None
        return (self.end_ms - self.start_ms) / 1000


@dataclass
class Selection:
    """The runs to compare and what distinguishes them."""

    runs: list[Row]
    parent: Row | None = None  # the sweep's parent run
    label_keys: list[str] = field(default_factory=list)  # swept keys or differing params
    label_source: str = "swept"  # swept | params
    more_varied: list[str] = field(default_factory=list)  # differing params not shown
    experiment: str = ""  # the experiment(s) the runs belong to


def how_to_point() -> str:
    return ("run from the directory that holds mlflow.db (where you ran `python -m runner`), "
            "or pass --tracking-uri sqlite:////absolute/path/to/mlflow.db "
            "(or set MLFLOW_TRACKING_URI)")


# ----------------------------------------------------------------------------- reading


def _ms(stamp) -> int | None:
    return None if stamp is None else stamp.value // 1_000_000  # pandas keeps nanoseconds


def _record(row: dict) -> Row:
    import pandas as pd

    present = {k: v for k, v in row.items() if not pd.isna(v)}

    def group(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in present.items() if k.startswith(prefix)}

    run_tags = group("tags.")
    name = run_tags.get(tags.NAME) or run_tags.get(tags.RUN_NAME) or row["run_id"]
    return Row(row["run_id"], name, row["status"], _ms(present.get("start_time")),
               _ms(present.get("end_time")), {},
               {k: float(v) for k, v in group("metrics.").items()}, None,
               experiment_id=row["experiment_id"], params=group("params."), tags=run_tags)


def search(experiment_ids: list[str] | None = None, filter_string: str = "",
           order_by: list[str] | None = None, max_results: int | None = None,
           by_id: bool = False) -> list[Row]:
    """Runs of the experiments (every experiment with `by_id`, deleted runs included, as
    looking a run up by its id does)."""
    import mlflow
    from mlflow.entities import ViewType

    limit = {"max_results": max_results} if max_results else {}  # else MLflow's: 100,000
    frame = mlflow.search_runs(experiment_ids, filter_string=filter_string, order_by=order_by,
                               search_all_experiments=by_id,
                               run_view_type=ViewType.ALL if by_id else ViewType.ACTIVE_ONLY,
                               **limit)
    return [_record(row) for row in frame.to_dict("records")]


def runs_with_ids(run_ids: list[str]) -> dict[str, Row]:
    valid = [i for i in run_ids if RUN_ID.fullmatch(i)]
    if not valid:
        return {}
    quoted = ", ".join(f"'{i}'" for i in valid)
    return {r.run_id: r for r in search(filter_string=f"attributes.run_id IN ({quoted})",
                                        by_id=True)}


def find_experiment(name: str, uri: str):
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found
    if not search(max_results=1, by_id=True):
        raise CompareError(f"the MLflow store at {uri} is empty: no runs recorded there; "
                           f"{how_to_point()}")
    names = ", ".join(sorted(e.name for e in mlflow.search_experiments()))
    raise CompareError(f"no experiment named {name!r} in {uri}; experiments there: {names}. "
                       "Pick one with --experiment NAME")


def experiment_names(runs: list[Row]) -> str:
    import mlflow

    ids = dict.fromkeys(run.experiment_id for run in runs)
    return ", ".join(mlflow.get_experiment(i).name for i in ids)


# ---------------------------------------------------------------------------- sweeps


def latest_sweep(experiment) -> Row | None:
    found = search([experiment.experiment_id],
                   filter_string=f"tags.`{tags.SWEEP_PARENT}` = 'true'",
                   order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def sweep_selection(parent: Row) -> Selection:
    children = search([parent.experiment_id],
                      filter_string=f"tags.`{tags.PARENT_RUN_ID}` = '{parent.run_id}'",
                      order_by=["attributes.start_time ASC"])
    if not children:
        raise CompareError(f"sweep {parent.run_id} ({parent.name}) has no child runs: its "
                           "jobs have not started yet, or ran with logger=none")
    return Selection(children, parent, swept_keys(parent, children), "swept",
                     experiment=experiment_names([parent]))


def swept_keys(parent: Row, children: list[Row]) -> list[str]:
    """The parent's list of swept keys, in its order, plus any only a child carries."""
    keys = [k for k in parent.tags.get(tags.SWEPT, "").split(",") if k]
    for child in children:
        keys += [t.removeprefix(tags.SWEPT_PREFIX) for t in sorted(child.tags)
                 if t.startswith(tags.SWEPT_PREFIX)
                 and t.removeprefix(tags.SWEPT_PREFIX) not in keys]
    return keys


def sweep_by_id(run_id: str, uri: str) -> Selection:
    parent = runs_with_ids([run_id]).get(run_id)
    if parent is None:
        raise CompareError(f"no run with id {run_id!r} in {uri} (--sweep takes a sweep's "
                           "parent run id, or `latest`)")
    if parent.tags.get(tags.SWEEP_PARENT) != "true":
        owner = parent.tags.get(tags.PARENT_RUN_ID)
        hint = (f"; it is a job of sweep {owner}: use --sweep {owner}" if owner
                else "; use --runs to compare plain runs")
        raise CompareError(f"run {run_id} is not a sweep parent run{hint}")
    return sweep_selection(parent)


# ------------------------------------------------------------------------ plain runs


def runs_by_id(run_ids: list[str], uri: str) -> Selection:
    wanted = list(dict.fromkeys(run_ids))
    found = runs_with_ids(wanted)
    unknown = [run_id for run_id in wanted if run_id not in found]
    if unknown:
        raise CompareError(f"no run with id {', '.join(unknown)} in {uri}")
    selection = plain_selection(sorted(found.values(), key=lambda r: r.start_ms or 0))
    selection.experiment = experiment_names(selection.runs)
    return selection


def plain_selection(runs: list[Row]) -> Selection:
    keys = varied_params(runs)
    return Selection(runs, None, keys[:MAX_VARIED_COLUMNS], "params", keys[MAX_VARIED_COLUMNS:])


def varied_params(runs: list[Row], max_length: int | None = MAX_VARIED_VALUE_LENGTH
                  ) -> list[str]:
    """Params whose values differ between the runs (values up to `max_length` characters;
    None: any), the telling ones first."""
    keys = {k for run in runs for k in run.params if not k.startswith(NOT_COMPARED_PARAMS)}
    varied = []
    for key in keys:
        values = [run.params.get(key) for run in runs]
        if len(set(values)) > 1 and (max_length is None
                                     or all(len(v or "") <= max_length for v in values)):
            varied.append(key)
    return sorted(varied, key=lambda k: (HEADLINE_PARAMS.index(k) if k in HEADLINE_PARAMS
                                         else len(HEADLINE_PARAMS), k.count("."), len(k), k))


def only_differing(selection: Selection) -> Selection:
    """--only-differing: a column for every param that varies among the runs (whatever its
    length or count), and none for what they all share, swept or not."""
    keys = varied_params(selection.runs, max_length=None)
    return Selection(selection.runs, selection.parent, keys, "params", [],
                     selection.experiment)


def select(args, uri: str) -> Selection:
    """--runs, --sweep ID, else the experiment's latest sweep, else its latest runs."""
    if args.runs:
        return runs_by_id(args.runs, uri)
    if args.sweep and args.sweep != LATEST:
        return sweep_by_id(args.sweep, uri)
    experiment = find_experiment(args.experiment, uri)
    parent = latest_sweep(experiment)
    if parent is not None:
        return sweep_selection(parent)
    if args.sweep == LATEST:
        raise CompareError(f"no sweep in experiment {args.experiment!r} ({uri}): no run is "
                           f"tagged {tags.SWEEP_PARENT}=true. Start one with "
                           "`python -m runner -m key=a,b`, or compare runs with --runs ID ...")
    runs = search([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                  max_results=PLAIN_RUNS_LIMIT)
    if not runs:
        raise CompareError(f"experiment {args.experiment!r} in {uri} has no runs")
    selection = plain_selection(list(reversed(runs)))
    selection.experiment = experiment.name
    return selection

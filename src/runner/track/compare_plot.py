"""The PNG `runner.compare` draws: per objective (one row of panels each, never two
metrics on one axis), the objective against the swept values, and against the number of
trainable parameters. matplotlib is imported only to draw."""

from __future__ import annotations

from pathlib import Path

from runner.track import tags
from runner.track.compare_format import is_number, shorten
from runner.track.compare_rows import Group, Objective
from runner.track.compare_select import CompareError, Row, Selection


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


def plot_against_values(ax, rows: list[Row], keys: list[str], objective: Objective,
                        title: str = "") -> None:
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
    spread = [r for r in scored if "objective" in r.spread]  # --group-by: mean ± std
    if spread:
        ax.errorbar([x_of(r) for r in spread], [r.objective for r in spread],
                    yerr=[r.spread["objective"] for r in spread], fmt="none", capsize=4)
    if scored:  # rows come best first
        ax.plot([x_of(scored[0])], [scored[0].objective], "*", markersize=16, color="tab:red",
                label="best")
        ax.legend(fontsize=8)
    ax.set_ylabel(objective.name or "objective")
    missing = len(rows) - len(scored)
    note = f" ({missing} without a value not shown)" if missing else ""
    title = title or f"{objective.name or 'objective'} ({objective.mode})"
    ax.set_title(f"{title}{note}", fontsize=10)
    ax.grid(True, alpha=0.3)


def plot_against_trainable(ax, rows: list[Row], objective: Objective) -> None:
    """(2) what each run trained (log scale) against what it scored."""
    points = [r for r in rows
              if r.objective is not None and (r.metrics.get(tags.TRAINABLE) or 0) > 0]
    if not points:
        ax.text(0.5, 0.5, f"no run has both {tags.TRAINABLE} and {objective.name}",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    xs, ys = [r.metrics[tags.TRAINABLE] for r in points], [r.objective for r in points]
    ax.scatter(xs, ys)
    ax.scatter(xs[:1], ys[:1], marker="*", s=200, color="tab:red", label="best", zorder=3)
    for row, x, y in zip(points, xs, ys, strict=True):
        ax.annotate(shorten(point_label(row), 40), (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.1)  # room for the labels of the outermost points
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel(objective.name or "objective")
    ax.set_title(f"{objective.name or 'objective'} vs trainable parameters", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)


def write_plot(groups: list[Group], selection: Selection, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 2, figsize=(13, 5 * len(groups)), squeeze=False)
    for (left, right), group in zip(axes, groups, strict=True):
        plot_against_values(left, group.rows, selection.label_keys, group.objective,
                            group.title)
        plot_against_trainable(right, group.rows, group.objective)
    title = (selection.parent.name or selection.parent.run_id
             if selection.parent is not None else f"{len(selection.runs)} runs")
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
    name = selection.parent.run_id if selection.parent is not None else "runs"
    return Path.cwd() / f"compare-{name}.png"

"""What the MLflow UI shows about a run beyond its numbers: the description (one paragraph
with the plan), the Source and User columns, the experiment's kind."""

from __future__ import annotations

import contextlib
import getpass

from runner.track import tags as names
from runner.track.origin import git_commit, program


def source_tags() -> dict[str, str]:
    """MLflow's own source tags, which fill the Source (and User) columns."""
    found = {names.SOURCE_NAME: program(), names.SOURCE_TYPE: "LOCAL"}
    commit = git_commit()
    if commit:
        found[names.SOURCE_GIT_COMMIT] = commit
    with contextlib.suppress(KeyError, OSError):  # no user name for this uid (containers)
        found[names.USER] = getpass.getuser()
    return found


def plan_paragraph(cfg, plan, raw) -> str:
    """The run's plan in one paragraph: model, head, freezing, trainable share, data."""
    model, head = cfg.model, cfg.head
    init = "from its pretrained weights" if model.init == "pretrained" else "from scratch"
    labels = f" ({head.num_labels} labels)" if head.get("num_labels") else ""
    if head.get("regression"):
        labels = " (regression)"
    splits = []
    for split in ("train", "validation", "test"):
        rows = getattr(raw, split)
        if rows is None:
            continue
        held_out = split == "validation" and raw.held_out
        origin = "held out of train" if held_out else f"from {raw.sources.get(split, '?')}"
        splits.append(f"{split} {rows.num_rows:,} rows {origin}")
    return (f"{model.family} ({model.checkpoint}, {init}) with a {head.task} head{labels}; "
            f"freezing {cfg.freeze.strategy}: {plan.trainable:,} of {plan.total:,} parameters "
            f"trainable ({plan.trainable_fraction:.4%}). Data: {'; '.join(splits)}.")

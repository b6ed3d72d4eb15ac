"""Column mapping: the user's columns renamed to the head's canonical roles (its
required and optional roles in runner.config.tasks)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from runner.config.tasks import TASKS
from runner.errors import DataError

# The hub's names first, then those of the original GLUE files (QQP's question1/2 and
# is_duplicate, MRPC's "#1 String" / "#2 String" / Quality, MNLI's gold_label) and CoNLL's.
COLUMN_CANDIDATES = {
    "text": ("text", "sentence", "sentence1", "content", "review", "document", "question1",
             "#1 String", "premise"),
    "text_pair": ("text_pair", "sentence2", "question2", "#2 String", "hypothesis"),
    "label": ("label", "labels", "class", "is_duplicate", "Quality", "gold_label",
              "score"),  # score: STS-B (head.regression)
    "question": ("question",),
    "context": ("context",),
    "answers": ("answers",),
    "source": ("source", "src", "input", "document"),
    "target": ("target", "tgt", "output", "summary"),
    "tokens": ("tokens", "words", "token"),
    "tags": ("ner_tags", "tags", "ner", "labels", "label"),
}


def _translation_columns(rows: list[dict], data_cfg: DictConfig, where: str) -> list[dict]:
    """{"translation": {"en": ..., "de": ...}} -> source / target by language."""
    langs = list(rows[0]["translation"])
    source = data_cfg.source_lang or langs[0]
    target = data_cfg.target_lang or (langs[1] if len(langs) > 1 else None)
    if target is None:
        raise DataError(f"{where}, row 1: the translation holds one language only ({langs}), "
                        "so there is no target. Give each row both texts, or name them with "
                        "data.source_lang and data.target_lang.")
    for lang, key in ((source, "data.source_lang"), (target, "data.target_lang")):
        if lang not in langs:
            raise DataError(f"{where}: the translation pairs have languages {langs}, not "
                            f"{lang!r}. Set {key} to one of them.")
    out = []
    for i, row in enumerate(rows, 1):
        pair = row.get("translation")
        missing = [lang for lang in (source, target)
                   if not isinstance(pair, dict) or pair.get(lang) is None]
        if missing:
            raise DataError(f"{where}, row {i}: the translation has no {missing[0]!r} text "
                            f"(it holds {pair!r}). Every row needs both {source!r} and "
                            f"{target!r}; fix or drop the row.")
        out.append({"source": pair[source], "target": pair[target]})
    return out


def header_less_names(rows: list[dict], task: str, data_cfg: DictConfig, where: str) -> list[dict]:
    """Name positional columns: data.column_names, else the head's usual order."""
    width = len(rows[0])
    names = list(data_cfg.column_names or [])
    if not names:
        spec = TASKS[task]
        required, optional = spec.required_roles, spec.optional_roles
        for candidate in (list(required), [required[0], *optional, *required[1:]]):
            if len(candidate) == width:
                names = candidate
                break
    if len(names) != width:
        raise DataError(
            f"{where} has no header and {width} columns. Name them with "
            f"data.column_names=[{','.join(['name'] * width)}] (e.g. text,label)."
        )
    return [dict(zip(names, r.values(), strict=True)) for r in rows]


def map_columns(rows: list[dict], task: str, data_cfg: DictConfig, where: str,
                required: tuple[str, ...] | None = None) -> list[dict]:
    """Rename the user's columns to the head's canonical roles (`required`: the roles that
    must be there, by default all the head's required ones; predict needs only inputs)."""
    if not rows:
        raise DataError(f"{where} has no rows. Give a file with data in it.")
    spec = TASKS[task]
    if spec.translation_rows and "translation" in rows[0] and not data_cfg.columns.source:
        return _translation_columns(rows, data_cfg, where)
    required = spec.required_roles if required is None else required
    optional = spec.optional_roles
    found = list(rows[0])
    mapping = {}
    for role in (*required, *optional):
        configured = OmegaConf.select(data_cfg, f"columns.{role}")  # None for a new role
        if configured is not None:
            if configured not in found:
                raise DataError(
                    f"{where}: data.columns.{role}={configured!r} is not a column. "
                    f"Columns found: {', '.join(map(str, found))}."
                )
            mapping[role] = configured
            continue
        # a column already claimed by another role (e.g. "label") is not reused
        column = next((c for c in COLUMN_CANDIDATES.get(role, (role,))
                       if c in found and c not in mapping.values()), None)
        if column is not None:
            mapping[role] = column
        elif role in required:
            raise DataError(
                f"{where}: no {role} column for head={task}. Columns found: "
                f"{', '.join(map(str, found))}. Map one with data.columns.{role}=<column>."
            )
    out = []
    for i, row in enumerate(rows):
        mapped = {role: row[column] for role, column in mapping.items()}
        if spec.row_ids:  # post-processing matches predictions to rows by id
            mapped["id"] = str(row.get("id", i))
        out.append(mapped)
    return out

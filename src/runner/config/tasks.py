"""The registry of heads: everything runner knows about a task, in one entry per task.

Pure data (no torch import), so validation and `--help` stay light. The behaviour of a
task (preprocessing, collator, evaluation step, metrics, the settings that shape its
features) lives in the module its `implementation` names, imported only when a run needs
it. The family tables (runner.config.families) say which families offer a head.

Adding a head: write `runner/tasks/<name>.py` (a `Task` subclass) and add its `TaskSpec`
below, with a `HeadSpec` in each family that offers it and `conf/head/<name>.yaml`; or do
all of that from your own code with one `register(spec, family_heads, head_config)` call.
tests/test_registry.py checks that every registered head is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.errors import Problem


@dataclass(frozen=True)
class Metric:
    """An evaluation metric a task reports (without the `eval/` prefix)."""

    name: str
    mode: str = "max"  # max | min: which direction is better
    # 0-1 (every fraction: accuracy, F1, exact match, precision, recall) | -1-1 (a
    # correlation) | 0-100 (BLEU, as sacrebleu reports it) | unbounded (loss, MSE, perplexity)
    scale: str = "0-1"


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the head's name: head=<name>, cfg.head.task
    auto_class: str  # the transformers Auto class that builds the task model
    implementation: str  # "module:Class" of its runner.tasks.Task subclass
    # Canonical column roles: required, optional. Their order is also the column order
    # assumed for header-less files without data.column_names.
    required_roles: tuple[str, ...]
    optional_roles: tuple[str, ...] = ()
    sample: tuple[str, str, str] = ("", "", "")  # bundled data: folder, train, validation
    tokenizer_texts: tuple[str, ...] = ()  # roles a tokenizer trained on the data covers
    metrics: tuple[Metric, ...] = ()  # what an evaluation reports
    objective: str = ""  # the default objective (a metric name)
    # head x family -> what the frozen-body cache stores (see runner.train.body_cache)
    body_cache: dict[str, str] = field(default_factory=dict)
    regression_metrics: tuple[Metric, ...] = ()  # reported instead when head.regression=true
    regression_objective: str = ""  # (a head without regression metrics has no regression)
    # What the data decides before any model exists: "classes" (a label per row), "tags"
    # (a tag per word) or "" (nothing); the label count and names then shape the head.
    labels: str = ""
    problem_type: str = ""  # transformers' config.problem_type for class labels
    row_ids: bool = False  # rows keep an id: post-processing matches predictions by it
    translation_rows: bool = False  # {"translation": {lang: text}} rows give source / target
    word_inputs: bool = False  # text comes as pre-split words (byte-level BPE: prefix space)
    fast_tokenizer: bool = False  # preprocessing needs a fast tokenizer (offsets, word ids)
    # The loss reads outputs at padded positions too (QA's span logits): the frozen-prefix
    # cache then stores them exactly, computed under the split's longest padding.
    reads_padding: bool = False
    # Checks of the head's own settings, run by validate() with all the others:
    # cfg -> problems. Pure config (no torch), like everything here.
    checks: tuple[Callable[[Any], list[Problem]], ...] = ()

    def default_objective(self, regression: bool = False) -> str:
        return self.regression_objective if regression else self.objective

    def metric(self, name: str, regression: bool = False) -> Metric | None:
        known = self.regression_metrics if regression else self.metrics
        return next((m for m in known if m.name == name), None)

    def metric_names(self, regression: bool = False) -> list[str]:
        return [m.name for m in (self.regression_metrics if regression else self.metrics)]


def _doc_stride_fits(cfg: Any) -> list[Problem]:
    stride, max_length = cfg.head.doc_stride, cfg.data.max_length
    if stride < max_length:
        return []
    return [Problem("head.doc_stride", f"{stride} must be smaller than data.max_length="
                    f"{max_length} (neighbouring windows share doc_stride tokens)",
                    f"set head.doc_stride below {max_length} (e.g. "
                    f"head.doc_stride={max(max_length // 4, 1)}), or raise data.max_length")]


_LOSS = Metric("loss", "min", "unbounded")
_ENCODERS = ("bert", "roberta", "distilbert", "gpt2")

TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec, family_heads: dict | None = None,
             head_config: dict | None = None) -> TaskSpec:
    """Add a task: its spec, the family table entries (family -> HeadSpec) for the families
    it supports, and, when given, the `head=<name>` config node for Hydra."""
    TASKS[spec.name] = spec
    if family_heads:
        from runner.config.families import FAMILIES

        for family, head_spec in family_heads.items():
            FAMILIES[family].heads[spec.name] = head_spec
    if head_config is not None:
        from hydra.core.config_store import ConfigStore

        from runner.config.schema import HeadConfig

        ConfigStore.instance().store(group="head", name=spec.name,
                                     node={**vars(HeadConfig()), **head_config})
    return spec


for _spec in (
    TaskSpec(
        "seqcls", "AutoModelForSequenceClassification",
        "runner.tasks.seqcls:SequenceClassification",
        required_roles=("text", "label"), optional_roles=("text_pair",),
        sample=("sentiment", "train.jsonl", "validation.jsonl"),
        tokenizer_texts=("text", "text_pair"),
        metrics=(_LOSS, Metric("accuracy"), Metric("f1_macro")),
        regression_metrics=(_LOSS, Metric("pearson", "max", "-1-1"),
                            Metric("spearman", "max", "-1-1"), Metric("mse", "min", "unbounded")),
        objective="accuracy", regression_objective="pearson",
        labels="classes", problem_type="single_label_classification",
        body_cache={"bert": "pooled", "roberta": "first", "distilbert": "first",
                    "gpt2": "last"},
    ),
    TaskSpec(
        "causal_lm", "AutoModelForCausalLM",
        "runner.tasks.causal_lm:CausalLanguageModelling",
        required_roles=("text",),
        sample=("text", "train.txt", "validation.txt"),
        tokenizer_texts=("text",),
        metrics=(_LOSS, Metric("perplexity", "min", "unbounded")),
        objective="perplexity",
    ),
    TaskSpec(
        "seq2seq", "AutoModelForSeq2SeqLM",
        "runner.tasks.seq2seq:SequenceToSequence",
        required_roles=("source", "target"),
        sample=("translation", "train.jsonl", "validation.jsonl"),
        tokenizer_texts=("source", "target"),
        metrics=(_LOSS, Metric("bleu", "max", "0-100")),
        objective="bleu",
        translation_rows=True,
    ),
    TaskSpec(
        "qa", "AutoModelForQuestionAnswering",
        "runner.tasks.qa:QuestionAnswering",
        required_roles=("question", "context", "answers"),
        sample=("qa", "train.json", "validation.json"),
        tokenizer_texts=("question", "context"),
        metrics=(Metric("exact_match"), Metric("f1")),
        objective="f1",
        body_cache=dict.fromkeys(_ENCODERS, "sequence"),
        row_ids=True, fast_tokenizer=True, checks=(_doc_stride_fits,), reads_padding=True,
    ),
    TaskSpec(
        "tokencls", "AutoModelForTokenClassification",
        "runner.tasks.tokencls:TokenClassification",
        required_roles=("tokens", "tags"),
        sample=("ner", "train.jsonl", "validation.jsonl"),
        tokenizer_texts=("tokens",),
        metrics=(_LOSS, Metric("precision"), Metric("recall"), Metric("f1"),
                 Metric("accuracy")),
        objective="f1",
        body_cache=dict.fromkeys(_ENCODERS, "sequence"),
        labels="tags", word_inputs=True, fast_tokenizer=True,
    ),
):
    register(_spec)

"""Extractive question answering: doc-stride windows and span post-processing, as run_qa."""

from __future__ import annotations

import numpy as np

from runner.errors import DataError
from runner.tasks import metrics, qa_windows
from runner.tasks.base import INDEX, Features, Task


class QuestionAnswering(Task):
    name = "qa"
    code = (qa_windows,)
    settings = ("head.doc_stride",)
    hint = "Check the questions and contexts, and data.max_length / head.doc_stride."

    def build_features(self, raw):
        # validate() has checked doc_stride < max_length (the TaskSpec's checks).
        max_length, stride = self.cfg.data.max_length, self.cfg.head.doc_stride
        tok = self.tokenizer
        for split, ds in (("train", raw.train), ("validation", raw.validation)):
            self._check_room_for_context(ds, split, max_length, stride)
        train = raw.train.map(
            lambda b: qa_windows.prepare_train_features(b, tok, max_length, stride), batched=True,
            remove_columns=raw.train.column_names, desc="tokenizing", load_from_cache_file=False)
        val, meta = self.eval_windows(raw.validation)
        return Features(train=train, validation=val, eval_meta=meta)

    def eval_windows(self, ds):
        """An evaluation split's windows, and each window's example id and offsets."""
        max_length, stride = self.cfg.data.max_length, self.cfg.head.doc_stride
        tok = self.tokenizer
        windows = ds.map(
            lambda b: qa_windows.prepare_eval_features(b, tok, max_length, stride), batched=True,
            remove_columns=ds.column_names, desc="tokenizing", load_from_cache_file=False)
        meta = [{"example_id": e, "offset_mapping": o,
                 "cls_index": qa_windows.no_answer_index(ids, tok)}
                for e, o, ids in zip(windows["example_id"], windows["offset_mapping"],
                                     windows["input_ids"], strict=True)]
        return windows.remove_columns(["example_id", "offset_mapping"]), meta

    def eval_examples(self, raw):
        return raw.validation.select_columns(["id", "context", "answers"]).to_list()

    def split_features(self, ds, split="test"):
        self._check_room_for_context(ds, split, self.cfg.data.max_length,
                                     self.cfg.head.doc_stride)
        windows, meta = self.eval_windows(ds)
        if len(windows) == 0:
            raise DataError(f"the {split} split has no examples after preprocessing. "
                            f"{self.hint}")
        windows = windows.add_column(INDEX, list(range(len(windows))))
        return Features(train=windows.select([]), validation=windows, eval_meta=meta,
                        eval_examples=ds.select_columns(["id", "context", "answers"]).to_list())

    def _check_room_for_context(self, ds, split: str, max_length: int, stride: int) -> None:
        """Windows hold question + context; the context part must exceed the stride."""
        lengths = [len(ids) for ids in self.tokenizer(list(ds["question"]))["input_ids"]]
        row = max(range(len(lengths)), key=lengths.__getitem__)
        room = max_length - lengths[row] - 2  # the separator tokens of a pair
        if room <= stride:
            raise DataError(
                f"{split} row {row + 1}: the question takes {lengths[row]} tokens, leaving "
                f"{room} of data.max_length={max_length} for the context, not more than "
                f"head.doc_stride={stride}. Raise data.max_length or lower head.doc_stride.")

    def eval_step(self, model, batch, rows, accelerator):
        outputs = model(**batch)
        start = accelerator.pad_across_processes(outputs.start_logits, dim=1,
                                                 pad_index=float("-inf"))
        end = accelerator.pad_across_processes(outputs.end_logits, dim=1,
                                               pad_index=float("-inf"))
        return {"start": start, "end": end, "index": rows}

    def accumulate(self, state, gathered):
        state.extra.setdefault("index", []).extend(gathered["index"].tolist())
        state.extra.setdefault("start", []).extend(gathered["start"].float().cpu().numpy())
        state.extra.setdefault("end", []).extend(gathered["end"].float().cpu().numpy())

    def compute(self, state, features):
        order = np.argsort(state.extra["index"], kind="stable")
        indices = [state.extra["index"][i] for i in order]
        meta = [features.eval_meta[i] for i in indices]
        starts = [state.extra["start"][i] for i in order]
        ends = [state.extra["end"][i] for i in order]
        head = self.cfg.head
        threshold = self.null_score_diff_threshold()
        predictions = qa_windows.postprocess_predictions(
            features.eval_examples, meta, starts, ends, n_best=head.n_best,
            max_answer_length=head.max_answer_length, null_score_diff_threshold=threshold)
        references = {e["id"]: list(e["answers"]["text"]) for e in features.eval_examples}
        return metrics.squad_metrics(predictions, references, no_answer=threshold is not None)

    def null_score_diff_threshold(self) -> float | None:
        return no_answer_threshold(self.cfg.head)


def no_answer_threshold(head) -> float | None:
    """SQuAD v2 runs (head.version_2_with_negative, which the data checks demand for
    questions without answers) predict "no answer" by this threshold; v1 runs: None, always
    the best span. Evaluation, runner.predict and the logged pyfunc model all decide by it."""
    return float(head.null_score_diff_threshold) if head.version_2_with_negative else None

"""Predictions of a trained model on unlabelled rows, one dict per row, in row order.

Rows are encoded by the head's own preprocessing (the Task's encode / QA windows), with a
placeholder where training had a label, so predictions see exactly the inputs training saw.
"""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from runner.tasks import qa_windows
from runner.tasks.base import IGNORE, Task

# The columns (canonical roles) a head predicts from.
INPUT_ROLES = {"seqcls": ("text",), "tokencls": ("tokens",), "qa": ("question", "context"),
               "causal_lm": ("text",), "seq2seq": ("source",)}


def predict(task: Task, model, rows: list[dict], batch_size: int, device: torch.device,
            max_new_tokens: int) -> Iterator[dict]:
    """One prediction per row (see each head's function for what it holds)."""
    model.eval()
    if task.name == "seqcls":
        return _classify(task, model, rows, batch_size, device)
    if task.name == "tokencls":
        return _tag(task, model, rows, batch_size, device)
    if task.name == "qa":
        return _answer(task, model, rows, batch_size, device)
    return _generate(task, model, rows, batch_size, device, max_new_tokens)


def _batches(task: Task, model, ds: datasets.Dataset, batch_size: int, device: torch.device,
             desc: str = "predicting") -> Iterator[dict[str, torch.Tensor]]:
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=task.collator(model))
    for batch in tqdm(loader, desc=desc, leave=False):
        yield {k: v.to(device) for k, v in batch.items()}


def _classify(task: Task, model, rows, batch_size, device) -> Iterator[dict]:
    """{"label", "score"}: the most likely class and its probability; regression:
    {"score"}, the predicted value."""
    regression = task.labels.regression
    placeholder = 0.0 if regression else 0
    ds = task.encode(datasets.Dataset.from_list([{**r, "label": placeholder} for r in rows]),
                     train=False).remove_columns("labels")
    for batch in _batches(task, model, ds, batch_size, device):
        with torch.no_grad():
            logits = model(**batch).logits.float()
        if regression:
            yield from ({"score": float(v)} for v in logits.squeeze(-1))
            continue
        probs, ids = logits.softmax(-1).max(-1)
        for p, i in zip(probs.tolist(), ids.tolist(), strict=True):
            yield {"label": task.labels.names[i], "score": p}


def _tag(task: Task, model, rows, batch_size, device) -> Iterator[dict]:
    """{"tags"}: a tag per word, from the word's first sub-token (None for words past
    data.max_length)."""
    ds = task.encode(datasets.Dataset.from_list(
        [{**r, "tags": [0] * len(r["tokens"])} for r in rows]), train=False)
    words = iter(rows)
    for batch in _batches(task, model, ds, batch_size, device):
        # The placeholder tags mark each word's first sub-token as training marked them.
        starts = batch.pop("labels") != IGNORE
        with torch.no_grad():
            predicted = model(**batch).logits.argmax(-1)
        for row_starts, row_ids in zip(starts, predicted, strict=True):
            tags = [task.labels.names[i] for i in row_ids[row_starts].tolist()]
            n_words = len(next(words)["tokens"])
            yield {"tags": tags + [None] * (n_words - len(tags))}


def _answer(task: Task, model, rows, batch_size, device) -> Iterator[dict]:
    """{"answer", "start", "score"}: the best span of the context (start: its character
    offset; score: start + end logit), as evaluation post-processes it. A SQuAD v2 run
    decides "no answer" as its evaluation does (head.null_score_diff_threshold) and adds
    "no_answer": true with answer "" (start and score null), else false."""
    # Windows find their row by id: the row's position, whatever ids the file repeats.
    examples = [{**r, "id": str(i), "answers": {"text": [], "answer_start": []}}
                for i, r in enumerate(rows)]
    windows, meta = task.eval_windows(datasets.Dataset.from_list(examples))
    starts, ends = [], []
    for batch in _batches(task, model, windows, batch_size, device):
        with torch.no_grad():
            out = model(**batch)
        starts.extend(out.start_logits.float().cpu().numpy())
        ends.extend(out.end_logits.float().cpu().numpy())
    head, threshold = task.cfg.head, task.null_score_diff_threshold()
    spans = qa_windows.best_spans(examples, qa_windows.group_by_example(meta), starts, ends,
                                  head.n_best, head.max_answer_length, threshold)
    for row_index, row in enumerate(rows):
        best = spans[str(row_index)]
        if best is None:
            line = {"answer": "", "start": None, "score": None}
        else:
            text = row["context"][best.start_char:best.end_char]
            stripped = text.lstrip()  # offsets of some tokenizers include the space before
            line = {"answer": stripped.rstrip(), "score": best.score,
                    "start": best.start_char + len(text) - len(stripped)}
        yield line if threshold is None else {**line, "no_answer": not line["answer"]}


def _generate(task: Task, model, rows, batch_size, device, max_new_tokens) -> Iterator[dict]:
    """{"generated_text"}: seq2seq's output for the source; causal LM's continuation of
    the text (greedy, or beam search with head.num_beams)."""
    tok, head = task.tokenizer, task.cfg.head
    seq2seq = task.name == "seq2seq"
    texts = [(head.source_prefix or "") + r["source"] if seq2seq else r["text"] for r in rows]
    side = tok.padding_side
    tok.padding_side = "right" if seq2seq else "left"  # a prompt's end touches its output
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc="generating", leave=False):
            enc = tok(texts[start:start + batch_size], return_tensors="pt", padding=True,
                      truncation=True, max_length=task.cfg.data.max_length).to(device)
            enc.pop("token_type_ids", None)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens,
                                     num_beams=head.num_beams, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
            new = out if seq2seq else out[:, enc["input_ids"].shape[1]:]
            yield from ({"generated_text": t.strip()}
                        for t in tok.batch_decode(new, skip_special_tokens=True))
    finally:
        tok.padding_side = side

"""Pyfunc models for the heads transformers 5 has no pipeline for (qa, seq2seq), so that
mlflow.pyfunc.load_model(...).predict works on them too.

qa: rows with `question` and `context` -> the answer span (text) for each; for a SQuAD v2
run (model_config's null_score_diff_threshold set) "" where the no-answer score (start and
end on the CLS token) beats the best span's by more than the threshold, as evaluation
decides.
seq2seq: texts (a list, or a frame's first column) -> the generated text for each.

Logged as "models from code": MLflow copies this file into the model and runs it when the
model loads (the set_model call at the end), so loading needs transformers, not runner.
The head comes from the model's config (model_config={"head": ...}).
"""

from __future__ import annotations

import mlflow.pyfunc

MAX_ANSWER_TOKENS = 30
MAX_NEW_TOKENS = 64


def _rows(model_input) -> list[dict]:
    if hasattr(model_input, "to_dict"):  # a pandas DataFrame
        return model_input.to_dict(orient="records")
    return [r if isinstance(r, dict) else {"text": r} for r in model_input]


class HeadModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import transformers

        self.head = context.model_config["head"]
        self.threshold = context.model_config.get("null_score_diff_threshold")
        directory = context.artifacts["model"]
        auto = (transformers.AutoModelForQuestionAnswering if self.head == "qa"
                else transformers.AutoModelForSeq2SeqLM)
        self.model = auto.from_pretrained(directory).eval()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(directory)

    def predict(self, context, model_input, params=None):  # a frame or a list
        rows = _rows(model_input)
        return [self._answer(r) if self.head == "qa" else self._generate(r) for r in rows]

    def _generate(self, row: dict) -> str:
        import torch

        text = row.get("text", next(iter(row.values())))
        encoded = self.tokenizer(str(text), return_tensors="pt", truncation=True)
        with torch.no_grad():
            out = self.model.generate(**encoded, max_new_tokens=MAX_NEW_TOKENS)
        return self.tokenizer.decode(out[0], skip_special_tokens=True)

    def _answer(self, row: dict) -> str:
        import torch

        encoded = self.tokenizer(row["question"], row["context"], truncation="only_second",
                                 return_offsets_mapping=True, return_tensors="pt")
        offsets = encoded.pop("offset_mapping")[0].tolist()
        in_context = [s == 1 for s in encoded.sequence_ids(0)]
        with torch.no_grad():
            out = self.model(**encoded)
        start, end = out.start_logits[0].tolist(), out.end_logits[0].tolist()
        best, span = float("-inf"), (0, 0)
        for i, ok in enumerate(in_context):
            for j in range(i, min(i + MAX_ANSWER_TOKENS, len(in_context))):
                if ok and in_context[j] and start[i] + end[j] > best:
                    best, span = start[i] + end[j], (offsets[i][0], offsets[j][1])
        if self.threshold is not None:
            ids = encoded["input_ids"][0].tolist()
            cls = self.tokenizer.cls_token_id
            null = ids.index(cls) if cls in ids else 0
            if start[null] + end[null] - best > self.threshold:
                return ""
        return row["context"][span[0]:span[1]]


mlflow.models.set_model(HeadModel())

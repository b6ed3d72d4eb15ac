"""Sequence classification (and regression): one label per text or text pair, as run_glue."""

from __future__ import annotations

from runner.tasks import metrics
from runner.tasks.base import Task, _map, per_example_loss


class SequenceClassification(Task):
    name = "seqcls"

    def encode(self, ds, train):
        max_length = self.cfg.data.max_length
        has_pair = "text_pair" in ds.column_names

        def tokenize(batch):
            enc = self.tokenizer(batch["text"], batch["text_pair"] if has_pair else None,
                                 truncation=True, max_length=max_length)
            enc["labels"] = batch["label"]
            return enc

        return _map(ds, tokenize, "tokenizing")

    def eval_step(self, model, batch, rows, accelerator):
        outputs = model(**batch)
        logits = outputs.logits
        preds = logits.squeeze(-1) if self.labels.regression else logits.argmax(-1)
        if self.labels.regression:
            loss = (preds.float() - batch["labels"].float()) ** 2
        else:
            loss = per_example_loss(logits, batch["labels"])
        return {"loss": loss, "predictions": preds, "references": batch["labels"]}

    def accumulate(self, state, gathered):
        super().accumulate(state, gathered)
        state.predictions.extend(gathered["predictions"].tolist())
        state.references.extend(gathered["references"].tolist())

    def compute(self, state, features):
        result = super().compute(state, features)
        if self.labels.regression:
            return {**result, **metrics.regression_metrics(state.predictions, state.references)}
        return {**result, **metrics.classification_metrics(
            state.predictions, state.references, self.labels.num_labels)}

"""Token classification (NER): a tag per word, scored by entity as run_ner does."""

from __future__ import annotations

from transformers import DataCollatorForTokenClassification

from runner.tasks import metrics
from runner.tasks.base import IGNORE, Task, _map


class TokenClassification(Task):
    name = "tokencls"

    def encode(self, ds, train):
        max_length = self.cfg.data.max_length

        def tokenize(batch):
            enc = self.tokenizer(batch["tokens"], is_split_into_words=True, truncation=True,
                                 max_length=max_length)
            all_labels = []
            for i, tags in enumerate(batch["tags"]):
                previous, labels = None, []
                for word in enc.word_ids(i):
                    # Only a word's first sub-token carries its tag.
                    labels.append(IGNORE if word is None or word == previous else tags[word])
                    previous = word
                all_labels.append(labels)
            enc["labels"] = all_labels
            return enc

        return _map(ds, tokenize, "tokenizing")

    def collator(self, model):
        return DataCollatorForTokenClassification(self.tokenizer, label_pad_token_id=IGNORE)

    def eval_step(self, model, batch, rows, accelerator):
        outputs = model(**batch)
        return self._with_references(outputs, batch, outputs.logits.argmax(-1), IGNORE,
                                     accelerator)

    def accumulate(self, state, gathered):
        super().accumulate(state, gathered)
        names = self.labels.names
        for pred_row, ref_row in zip(gathered["predictions"].tolist(),
                                     gathered["references"].tolist(), strict=True):
            kept = [(p, r) for p, r in zip(pred_row, ref_row, strict=True) if r != IGNORE]
            state.predictions.append([names[p] for p, _ in kept])
            state.references.append([names[r] for _, r in kept])

    def compute(self, state, features):
        return {**super().compute(state, features),
                **metrics.entity_metrics(state.predictions, state.references)}

"""Sequence to sequence (translation): generated text scored with BLEU, as run_translation."""

from __future__ import annotations

from transformers import DataCollatorForSeq2Seq

from runner.tasks import metrics
from runner.tasks.base import IGNORE, Task, _map


class SequenceToSequence(Task):
    name = "seq2seq"
    settings = ("head.source_prefix", "head.max_target_length")

    def encode(self, ds, train):
        prefix = self.cfg.head.source_prefix or ""
        max_length, max_target = self.cfg.data.max_length, self.cfg.head.max_target_length

        def tokenize(batch):
            enc = self.tokenizer([prefix + s for s in batch["source"]], max_length=max_length,
                                 truncation=True)
            targets = self.tokenizer(text_target=batch["target"], max_length=max_target,
                                     truncation=True)
            enc["labels"] = targets["input_ids"]
            return enc

        return _map(ds, tokenize, "tokenizing")

    def collator(self, model):
        return DataCollatorForSeq2Seq(self.tokenizer, model=model, label_pad_token_id=IGNORE)

    def eval_step(self, model, batch, rows, accelerator):
        outputs = model(**batch)
        generator = accelerator.unwrap_model(model)
        generated = generator.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            max_new_tokens=self.cfg.head.max_target_length, num_beams=self.cfg.head.num_beams)
        return self._with_references(outputs, batch, generated, self.tokenizer.pad_token_id,
                                     accelerator)

    def accumulate(self, state, gathered):
        super().accumulate(state, gathered)
        pad = self.tokenizer.pad_token_id
        refs = gathered["references"].masked_fill(gathered["references"] == IGNORE, pad)
        decode = self.tokenizer.batch_decode
        state.predictions.extend(s.strip() for s in decode(gathered["predictions"],
                                                            skip_special_tokens=True))
        state.references.extend(s.strip() for s in decode(refs, skip_special_tokens=True))

    def compute(self, state, features):
        return {**super().compute(state, features),
                **metrics.bleu_metrics(state.predictions, state.references)}

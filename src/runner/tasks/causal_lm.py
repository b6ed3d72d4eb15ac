"""Causal language modelling: texts joined and cut into blocks, as run_clm."""

from __future__ import annotations

from itertools import chain

from transformers import default_data_collator

from runner.tasks import metrics
from runner.tasks.base import Task, _map


class CausalLanguageModelling(Task):
    name = "causal_lm"
    settings = ("data.block_size",)
    hint = "There is less text than one block: lower data.block_size or give more text."

    def encode(self, ds, train):
        block = self.cfg.data.block_size
        eos = self.tokenizer.eos_token_id

        def tokenize(batch):
            enc = self.tokenizer(batch["text"])
            if eos is not None:  # mark where one text ends and the next begins
                enc["input_ids"] = [ids + [eos] for ids in enc["input_ids"]]
                enc["attention_mask"] = [m + [1] for m in enc["attention_mask"]]
                if "token_type_ids" in enc:
                    enc["token_type_ids"] = [t + [0] for t in enc["token_type_ids"]]
            return enc

        def chunk(batch):
            joined = {k: list(chain.from_iterable(v)) for k, v in batch.items()}
            usable = (len(joined["input_ids"]) // block) * block
            out = {k: [v[i:i + block] for i in range(0, usable, block)]
                   for k, v in joined.items()}
            out["labels"] = [list(ids) for ids in out["input_ids"]]
            return out

        tokenized = _map(ds, tokenize, "tokenizing")
        # One batch for the whole split so no text is dropped between map batches.
        return tokenized.map(chunk, batched=True, batch_size=None, desc="chunking",
                             load_from_cache_file=False)

    def collator(self, model):
        return default_data_collator  # blocks all have the same length

    def compute(self, state, features):
        return metrics.language_model_metrics(state.loss_sum / max(state.loss_count, 1))

"""runner's sequence classifiers for the poolings a family's own class does not offer
(head.pooling = cls | mean | max | last where that is not the native one).

Each is a transformers PreTrainedModel of its family: the family's base model under its
usual attribute name (`bert`, `roberta`, `distilbert`, `transformer`), so checkpoints load
into it, freeze plans and the feature cache find it where they always do; then the
pooling over the attention mask, dropout and one linear classifier, with transformers'
usual sequence-classification loss. Its config has its own model_type
(`runner_pooled_<family>`) and records the pooling. Importing this module registers the
classes with transformers' Auto classes, so a saved model loads with

    import runner.model.pooled  # noqa: F401
    transformers.pipeline("text-classification", model=DIR)

No code is ever loaded from the checkpoint (trust_remote_code stays off).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    GPT2Config,
    RobertaConfig,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel
from transformers.models.distilbert.modeling_distilbert import (
    DistilBertModel,
    DistilBertPreTrainedModel,
)
from transformers.models.gpt2.modeling_gpt2 import GPT2Model, GPT2PreTrainedModel
from transformers.models.roberta.modeling_roberta import RobertaModel, RobertaPreTrainedModel
from transformers.utils import can_return_tuple

from runner.config.pooling import POOLED_MODEL_TYPE, RUNNER_POOLINGS


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per row from the token states [rows, positions, hidden]; padding (mask 0)
    never counts. The frozen-body cache stores exactly this."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "last":  # the rightmost real token, whatever the padding side
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (positions * attention_mask.to(positions.dtype)).argmax(-1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    mask = attention_mask.to(hidden.device).unsqueeze(-1) > 0
    if mode == "mean":  # summed in float32: bf16 sums over long rows lose the low bits
        summed = hidden.float().masked_fill(~mask, 0.0).sum(1)
        return (summed / mask.sum(1).clamp(min=1)).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(~mask, torch.finfo(hidden.dtype).min).max(1).values
    raise ValueError(f"unknown pooling {mode!r}: runner's pooled classes compute "
                     f"{', '.join(RUNNER_POOLINGS)}")


def _dropout(config) -> float:
    """The family's own classifier dropout setting."""
    for key in ("classifier_dropout", "seq_classif_dropout", "summary_first_dropout",
                "hidden_dropout_prob"):
        value = getattr(config, key, None)
        if value is not None:
            return float(value)
    return 0.1


class _Pooled:
    """Shared by the per-family classes below (mixed in before the family's PreTrainedModel,
    whose weight initialisation and checkpoint loading they keep). Each names its body class
    and how to build it; the body sits under the family's base_model_prefix."""

    body_class: type
    body_init: dict = {}  # BERT / RoBERTa: no pooler, an unused (under DDP, gradient-less) layer
    body_kwargs: dict = {}  # fixed forward arguments (GPT-2: no key/value cache)

    def __init__(self, config):
        super().__init__(config)
        if config.pooling not in RUNNER_POOLINGS:
            raise ValueError(f"pooling={config.pooling!r}: {type(self).__name__} computes "
                             f"{', '.join(RUNNER_POOLINGS)}")
        self.num_labels = config.num_labels
        setattr(self, self.base_model_prefix, self.body_class(config, **self.body_init))
        self.dropout = nn.Dropout(_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, labels=None, **inputs):
        body = getattr(self, self.base_model_prefix)
        if attention_mask is None:
            shape = input_ids.shape if input_ids is not None else inputs["inputs_embeds"].shape[:2]
            device = (input_ids if input_ids is not None else inputs["inputs_embeds"]).device
            attention_mask = torch.ones(shape, dtype=torch.long, device=device)
        inputs.pop("return_dict", None)
        out = body(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                   **self.body_kwargs, **inputs)
        pooled = pool(out.last_hidden_state, attention_mask, self.config.pooling)
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else self.loss_function(labels, logits, self.config)
        return SequenceClassifierOutput(loss=loss, logits=logits,
                                        hidden_states=getattr(out, "hidden_states", None),
                                        attentions=getattr(out, "attentions", None))


def _config_class(base: type, family: str) -> type:
    """The family's config with its own model_type and a `pooling` field (saved in
    config.json, so a reload pools the same way)."""
    return type(f"Pooled{base.__name__}", (base,), {
        "__module__": __name__, "__annotations__": {"pooling": "str"}, "pooling": "mean",
        "model_type": POOLED_MODEL_TYPE.format(family=family)})


PooledBertConfig = _config_class(BertConfig, "bert")
PooledRobertaConfig = _config_class(RobertaConfig, "roberta")
PooledDistilBertConfig = _config_class(DistilBertConfig, "distilbert")
PooledGPT2Config = _config_class(GPT2Config, "gpt2")


class PooledBertForSequenceClassification(_Pooled, BertPreTrainedModel):
    config_class, body_class, body_init = PooledBertConfig, BertModel, {"add_pooling_layer": False}


class PooledRobertaForSequenceClassification(_Pooled, RobertaPreTrainedModel):
    config_class, body_class = PooledRobertaConfig, RobertaModel
    body_init = {"add_pooling_layer": False}


class PooledDistilBertForSequenceClassification(_Pooled, DistilBertPreTrainedModel):
    config_class, body_class = PooledDistilBertConfig, DistilBertModel


class PooledGPT2ForSequenceClassification(_Pooled, GPT2PreTrainedModel):
    config_class, body_class = PooledGPT2Config, GPT2Model
    body_kwargs = {"use_cache": False}


POOLED_CLASSES = (PooledBertForSequenceClassification, PooledRobertaForSequenceClassification,
                  PooledDistilBertForSequenceClassification, PooledGPT2ForSequenceClassification)


def pooling_of(model) -> str | None:
    """The pooling a runner pooled model computes; None for any other model."""
    return model.config.pooling if isinstance(model, _Pooled) else None


for _model_class in POOLED_CLASSES:
    AutoConfig.register(_model_class.config_class.model_type, _model_class.config_class,
                        exist_ok=True)
    AutoModelForSequenceClassification.register(_model_class.config_class, _model_class,
                                                exist_ok=True)

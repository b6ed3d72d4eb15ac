"""The explicit tables: model families and the heads each one offers.

Pure data (no torch or transformers import), so config validation can use it and stay fast.
Module paths are relative to the family's "body" (the base model inside a task model);
`HeadSpec.body` says where that body sits in the task model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.config import pooling as poolings


@dataclass(frozen=True)
class HeadSpec:
    model_class: str  # the class the task's Auto class resolves to for this family
    body: str  # where the base model sits in the task model ("" = the task model itself)
    head_modules: tuple[str, ...]  # modules outside the body that make up the task head
    blocks: tuple[str, ...] | None = None  # override of Family.blocks for this head
    # Config values this family needs for this head (e.g. BERT as a causal LM is a decoder).
    config: dict = field(default_factory=dict)
    # head.pooling (sequence classifiers): the pooling model_class does natively ("" = the
    # head has no choice of pooling), and runner's class (runner.model.pooled) for the others.
    pooling: str = ""
    pooled_class: str = ""


@dataclass(frozen=True)
class Family:
    name: str  # runner's family name, which is also transformers' model_type
    default_checkpoint: str
    # The default checkpoint's architecture, used for scratch models when its config.json
    # cannot be read locally, and for validation before transformers is imported.
    default_config: dict
    # Canonical size names -> this family's config keys.
    hidden_key: str
    heads_key: str
    layers_keys: tuple[str, ...]
    embeddings: tuple[str, ...]  # embedding modules, relative to the body
    blocks: tuple[str, ...]  # ModuleLists of transformer blocks, bottom to top, per stack
    tokenizer_kind: str  # tokenizer trained for init=scratch: wordpiece | bpe | unigram
    heads: dict[str, HeadSpec] = field(default_factory=dict)
    above_blocks: tuple[str, ...] = ()  # body modules above the top block (pooler, final norm)
    encoder: tuple[str, ...] = ()  # what freeze=encoder freezes (encoder-decoder families)
    norm_classes: tuple[str, ...] = ("LayerNorm",)  # normalization classes (freeze=layernorm)
    # The frozen-prefix cache (runner.train.prefix_cache): the body module whose output
    # enters the first block (embeddings plus positions and token types), and how many
    # bottom blocks may be skipped (None: all; T5: 0, see its entry).
    prefix_entry: str = "embeddings"
    prefix_max_blocks: int | None = None
    # Dropout applied to the embeddings' output outside their modules (GPT-2's `drop`): it
    # runs in eval mode when the embeddings are frozen, like the dropout inside BERT's.
    embedding_dropout: tuple[str, ...] = ()
    # Heads are split across heads only when hidden size is a multiple of the head count
    # (T5 has its own per-head size d_kv, so any head count is valid there).
    heads_must_divide_hidden: bool = True
    # Adapters' default targets (module names, matched as peft does: the name or its last
    # dotted parts): LoRA/DoRA on the attention query and value projections; IA3 on keys,
    # values and the feed-forward output, the latter scaled on its input (peft 0.21's own
    # defaults, which have no DistilBERT entry: its equivalents here).
    lora_targets: tuple[str, ...] = ()
    ia3_targets: tuple[str, ...] = ()
    ia3_feedforward: tuple[str, ...] = ()

    @property
    def model_type(self) -> str:
        return self.name

    @property
    def encoder_decoder(self) -> bool:
        return bool(self.encoder)


# Keys that change tensor shapes or the meaning of pretrained weights. Overriding any of
# them on a pretrained checkpoint silently yields a different (partly random) model.
ARCHITECTURE_KEYS = frozenset(
    {
        # BERT / RoBERTa names (and aliases that other configs map onto their own keys)
        "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "vocab_size", "max_position_embeddings", "type_vocab_size", "hidden_act",
        "position_embedding_type", "embedding_size",
        # DistilBERT
        "dim", "n_layers", "n_heads", "hidden_dim", "activation", "sinusoidal_pos_embds",
        # GPT-2
        "n_embd", "n_layer", "n_head", "n_inner", "n_positions", "n_ctx",
        "activation_function",
        # T5
        "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
        "relative_attention_num_buckets", "relative_attention_max_distance",
        "feed_forward_proj", "is_gated_act", "dense_act_fn",
        "tie_word_embeddings",
    }
)

_BERT_CONFIG = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
    "type_vocab_size": 2,
}


_DISTILBERT_CONFIG = {
    "vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072,
    "max_position_embeddings": 512,
}
_ROBERTA_CONFIG = {
    "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514,
    "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0,
    "eos_token_id": 2,
}
_GPT2_CONFIG = {"vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12,
                "n_positions": 1024}
_T5_CONFIG = {
    "vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6,
    "num_heads": 8, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
}


def _bert_like(name: str, prefix: str, checkpoint: str, config: dict, tokenizer_kind: str,
               lm_head: tuple[str, str], native_pooling: str) -> Family:
    """BERT and RoBERTa share their layout; only names, defaults and the LM head (class,
    module) differ. As causal LMs they must be decoders (they predict the next token only
    then)."""
    lm_class, lm_module = lm_head
    return Family(
        name, checkpoint, config,
        hidden_key="hidden_size", heads_key="num_attention_heads",
        layers_keys=("num_hidden_layers",),
        embeddings=("embeddings",), blocks=("encoder.layer",), above_blocks=("pooler",),
        tokenizer_kind=tokenizer_kind,
        lora_targets=("query", "value"), ia3_targets=("key", "value", "output.dense"),
        ia3_feedforward=("output.dense",),
        heads={
            "seqcls": HeadSpec(f"{prefix}ForSequenceClassification", name, ("classifier",),
                               pooling=native_pooling,
                               pooled_class=f"Pooled{prefix}ForSequenceClassification"),
            "causal_lm": HeadSpec(lm_class, name, (lm_module,), config={"is_decoder": True}),
            "qa": HeadSpec(f"{prefix}ForQuestionAnswering", name, ("qa_outputs",)),
            "tokencls": HeadSpec(f"{prefix}ForTokenClassification", name, ("classifier",)),
        },
    )


# Each entry: name (= model_type), default checkpoint and its config; the size keys; the
# layout (embeddings, blocks, what sits above them); the tokenizer kind; the heads.
FAMILIES: dict[str, Family] = {
    "bert": _bert_like("bert", "Bert", "bert-base-uncased", _BERT_CONFIG, "wordpiece",
                       lm_head=("BertLMHeadModel", "cls"), native_pooling="pooler"),
    "distilbert": Family(
        "distilbert", "distilbert-base-uncased", _DISTILBERT_CONFIG,
        hidden_key="dim", heads_key="n_heads", layers_keys=("n_layers",),
        embeddings=("embeddings",), blocks=("transformer.layer",),
        tokenizer_kind="wordpiece",
        lora_targets=("q_lin", "v_lin"), ia3_targets=("k_lin", "v_lin", "lin2"),
        ia3_feedforward=("lin2",),
        heads={
            "seqcls": HeadSpec(
                "DistilBertForSequenceClassification", "distilbert",
                ("pre_classifier", "classifier"), pooling="cls",
                pooled_class="PooledDistilBertForSequenceClassification",
            ),
            "qa": HeadSpec("DistilBertForQuestionAnswering", "distilbert", ("qa_outputs",)),
            "tokencls": HeadSpec(
                "DistilBertForTokenClassification", "distilbert", ("classifier",)
            ),
        },
    ),
    "roberta": _bert_like("roberta", "Roberta", "roberta-base", _ROBERTA_CONFIG, "bpe",
                          lm_head=("RobertaForCausalLM", "lm_head"), native_pooling="cls"),
    "gpt2": Family(
        "gpt2", "gpt2", _GPT2_CONFIG,
        hidden_key="n_embd", heads_key="n_head", layers_keys=("n_layer",),
        embeddings=("wte", "wpe"), blocks=("h",), above_blocks=("ln_f",),
        tokenizer_kind="bpe", prefix_entry="drop", embedding_dropout=("drop",),
        lora_targets=("c_attn",), ia3_targets=("c_attn", "mlp.c_proj"),
        ia3_feedforward=("mlp.c_proj",),
        heads={
            "seqcls": HeadSpec("GPT2ForSequenceClassification", "transformer", ("score",),
                               pooling="last",
                               pooled_class="PooledGPT2ForSequenceClassification"),
            "causal_lm": HeadSpec("GPT2LMHeadModel", "transformer", ("lm_head",)),
            "qa": HeadSpec("GPT2ForQuestionAnswering", "transformer", ("qa_outputs",)),
            "tokencls": HeadSpec("GPT2ForTokenClassification", "transformer", ("classifier",)),
        },
    ),
    "t5": Family(
        "t5", "t5-small", _T5_CONFIG,
        hidden_key="d_model", heads_key="num_heads",
        layers_keys=("num_layers", "num_decoder_layers"),
        embeddings=("shared",), blocks=("encoder.block", "decoder.block"),
        above_blocks=("encoder.final_layer_norm", "decoder.final_layer_norm"),
        encoder=("encoder",), norm_classes=("T5LayerNorm",), tokenizer_kind="unigram",
        # One dropout module of the stack acts on the embeddings and on its final output,
        # so it cannot be off for frozen bottom blocks alone: only k=0 blocks are exact.
        prefix_entry="encoder.embed_tokens", prefix_max_blocks=0,
        heads_must_divide_hidden=False,
        lora_targets=("q", "v"), ia3_targets=("k", "v", "wo"), ia3_feedforward=("wo",),
        heads={
            "seqcls": HeadSpec(
                "T5ForSequenceClassification", "transformer", ("classification_head",)
            ),
            "seq2seq": HeadSpec("T5ForConditionalGeneration", "", ("lm_head",)),
            "qa": HeadSpec("T5ForQuestionAnswering", "", ("qa_outputs",)),
            # The token classifier runs the encoder alone.
            "tokencls": HeadSpec(
                "T5ForTokenClassification", "transformer", ("classifier",),
                blocks=("encoder.block",),
            ),
        },
    ),
}


def supported_pairs_text() -> str:
    lines = [f"  {fam}: {', '.join(spec.heads)}" for fam, spec in FAMILIES.items()]
    return "\n".join(lines)


def family_of(cfg: Any) -> Family:
    return FAMILIES[cfg.model.family]


def head_spec(cfg: Any) -> HeadSpec:
    """The run's head: the family table's entry, or runner's pooled class (a classifier
    alone on the body, under the same body path) when head.pooling is not the native one."""
    spec = FAMILIES[cfg.model.family].heads[cfg.head.task]
    if spec.pooled_class and pooling_of(cfg)[0] != spec.pooling:
        return replace(spec, model_class=spec.pooled_class, head_modules=("classifier",))
    return spec


def pooling_of(cfg: Any) -> tuple[str, str]:
    """(concrete head.pooling, why) for heads with a choice of pooling; ("", why) otherwise."""
    spec = FAMILIES[cfg.model.family].heads[cfg.head.task]
    if not spec.pooling:
        return "", f"{cfg.head.task} on {cfg.model.family} has no choice of pooling"
    return poolings.resolve(str(cfg.head.get("pooling", "auto")), spec.pooling,
                            str(cfg.model.checkpoint), cfg.model.family, cfg.model.init)


def pooled_model_type(family: str) -> str:
    """The config model_type of runner's pooled class for a family."""
    return poolings.POOLED_MODEL_TYPE.format(family=family)


def is_local(checkpoint: str) -> bool:
    """A local directory (or a path-like name), as opposed to a hub id."""
    return Path(checkpoint).expanduser().exists() or checkpoint.startswith(("/", "./", "../"))

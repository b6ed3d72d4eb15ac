"""The tokenizer: the checkpoint's own, or one trained on the training split.

A scratch model whose checkpoint has no usable tokenizer gets one of its family's kind
(WordPiece for BERT-like, byte-level BPE for GPT-2 / RoBERTa, Unigram for T5), trained with
the `tokenizers` library and cached on disk by a fingerprint of the data and settings, so
sweeps and reruns train it once. The model's vocabulary size then follows the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tokenizers
from omegaconf import DictConfig
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from runner.config.families import family_of, is_local
from runner.config.tasks import TASKS
from runner.data.cache import cache_root
from runner.data.load import RawData
from runner.errors import ModelError

log = logging.getLogger(__name__)

# Families whose models take token_type_ids (the others reject or misuse them).
USES_TOKEN_TYPE_IDS = {"bert"}


def training_texts(raw: RawData, task: str) -> Iterator[str]:
    """Every piece of text in the training split the tokenizer should cover."""
    for column in TASKS[task].tokenizer_texts:
        if column not in raw.train.column_names:
            continue
        for value in raw.train[column]:
            if isinstance(value, list):
                yield " ".join(value)
            elif value:
                yield str(value)


# ------------------------------------------------------------------ tokenizer recipes


# Continuing characters of a word ("##e" in WordPiece) are written as characters of a
# private-use plane while the vocabulary is learnt, so a plain BPE trainer can learn it.
_INNER = 0xF0000
_INNER_SPAN = 0xFFFE


def _inner(char: str) -> str:
    return chr(_INNER + ord(char)) if ord(char) < _INNER_SPAN else char


def _wordpiece_token(token: str) -> str:
    """A learnt token back in WordPiece form: continuing characters read as `##...`."""
    first_inner = _INNER <= ord(token[0]) < _INNER + _INNER_SPAN
    plain = "".join(chr(ord(c) - _INNER) if _INNER <= ord(c) < _INNER + _INNER_SPAN else c
                    for c in token)
    return "##" + plain if first_inner else plain


def _wordpiece_vocab(vocab_size: int, min_frequency: int, texts, normalizer, pre_tokenizer,
                     specials: list[str]) -> dict[str, int]:
    """WordPiece's vocabulary, learnt the way its trainer does (BPE merges over words, with
    continuing pieces marked), but in a fixed order.

    tokenizers' WordPieceTrainer numbers the `##` pieces in the order of a Rust hash map,
    seeded afresh in every process, and breaks ties between equally frequent merges by
    those numbers: the same data gave another vocabulary on every fresh cache. The plain
    BPE trainer numbers its alphabet in sorted order, so it learns the same merges each time.
    """
    def words():
        for text in texts:
            pieces = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
            yield " ".join(w[0] + "".join(map(_inner, w[1:])) for w, _ in pieces)

    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bpe.train_from_iterator(words(), trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
        show_progress=False))
    return {_wordpiece_token(t): i for t, i in bpe.get_vocab().items()}


def _wordpiece(vocab_size: int, min_frequency: int, texts) -> PreTrainedTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = _wordpiece_vocab(vocab_size, min_frequency, texts, normalizer, pre_tokenizer,
                             specials)
    tok = tokenizers.Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(specials)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


_UNIGRAM_CHAR_STEP = 1e-4  # the score step between the characters Unigram appends


def _fixed_unigram_order(tok: tokenizers.Tokenizer, n_specials: int) -> tokenizers.Tokenizer:
    """Unigram's pieces in a fixed order, the special tokens keeping their ids.

    The trainer sums scores in a varying order (the last digit differs from run to run),
    and appends the characters it has not learnt in hash-map order, each 1e-4 (or 0) less
    likely than the last: scores are rounded, that run of characters is given its scores in the
    characters' sorted order, and the pieces are sorted by score, then text.
    """
    document = json.loads(tok.to_str())
    vocab = document["model"]["vocab"]
    pieces = sorted(([piece, round(score, 9)] for piece, score in vocab[n_specials:]),
                    key=lambda p: (-p[1], p[0]))
    singles = [p for p in pieces if len(p[0]) == 1]
    run = singles[-1:]
    for piece in reversed(singles[:-1]):
        step = piece[1] - run[-1][1]
        if min(abs(step), abs(step - _UNIGRAM_CHAR_STEP)) > 1e-7:  # steps of 1e-4 (or 0)
            break
        run.append(piece)
    for piece, char in zip(sorted(run, key=lambda p: -p[1]), sorted(p[0] for p in run),
                           strict=True):
        piece[0] = char
    pieces.sort(key=lambda p: (-p[1], p[0]))
    document["model"]["vocab"] = vocab[:n_specials] + pieces
    return tokenizers.Tokenizer.from_str(json.dumps(document))


def _byte_bpe(vocab_size: int, min_frequency: int, texts, family: str) -> PreTrainedTokenizerFast:
    if family == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids match RoBERTa's config
    else:
        specials = ["<|endoftext|>"]
    tok = tokenizers.Tokenizer(models.BPE())
    # A prefix space makes a word tokenize the same at the start of a text as inside it,
    # which token classification on pre-split words needs.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if family == "roberta":
        tok.post_processor = processors.RobertaProcessing(
            ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
            trim_offsets=True, add_prefix_space=True)
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
            pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
            add_prefix_space=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    eos = "<|endoftext|>"
    # GPT-2 has no pad token; padding with end-of-text lets batches hold several rows.
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos,
                                   unk_token=eos, pad_token=eos, add_prefix_space=True)


def _unigram(vocab_size: int, texts) -> PreTrainedTokenizerFast:
    specials = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 as T5's config expects
    tok = tokenizers.Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"))
    tok = _fixed_unigram_order(tok, len(specials))
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")


def train_tokenizer(kind: str, family: str, texts: list[str], vocab_size: int,
                    min_frequency: int) -> PreTrainedTokenizerFast:
    if kind == "wordpiece":
        tok = _wordpiece(vocab_size, min_frequency, texts)
    elif kind == "bpe":
        tok = _byte_bpe(vocab_size, min_frequency, texts, family)
    else:
        tok = _unigram(vocab_size, texts)
    if family not in USES_TOKEN_TYPE_IDS:
        tok.model_input_names = ["input_ids", "attention_mask"]
    return tok


# ---------------------------------------------------------------------------- selection


def _fingerprint(*parts: Any, texts: list[str]) -> str:
    digest = hashlib.sha256(repr(parts).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace"))
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def _trained_tokenizer(cfg: DictConfig, raw: RawData) -> PreTrainedTokenizerFast:
    family = family_of(cfg)
    texts = list(training_texts(raw, cfg.head.task))
    key = _fingerprint(family.tokenizer_kind, family.name, cfg.tokenizer.vocab_size,
                       cfg.tokenizer.min_frequency, tokenizers.__version__, texts=texts)
    target = cache_root() / "tokenizers" / key
    if (target / "tokenizer.json").is_file():
        log.info("tokenizer: reusing the %s tokenizer trained on this data (%s)",
                 family.tokenizer_kind, target)
        return AutoTokenizer.from_pretrained(str(target))
    log.info("tokenizer: training a %s tokenizer (vocab %d) on %d training texts",
             family.tokenizer_kind, cfg.tokenizer.vocab_size, len(texts))
    tok = train_tokenizer(family.tokenizer_kind, family.name, texts, cfg.tokenizer.vocab_size,
                          cfg.tokenizer.min_frequency)
    # Written beside the target, then renamed: a crash never leaves half a tokenizer.
    staging = target.with_name(f".{key}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    tok.save_pretrained(str(staging))
    try:
        staging.rename(target)
    except OSError:  # another job of the sweep got there first
        shutil.rmtree(staging, ignore_errors=True)
    return AutoTokenizer.from_pretrained(str(target))


def _checkpoint_tokenizer(cfg: DictConfig) -> PreTrainedTokenizerBase | None:
    checkpoint = str(cfg.model.checkpoint)
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    if family_of(cfg).tokenizer_kind == "bpe" and TASKS[cfg.head.task].word_inputs:
        kwargs["add_prefix_space"] = True  # byte-level BPE on pre-split words needs it
    if not is_local(checkpoint):
        kwargs["local_files_only"] = cfg.model.init == "scratch"
    elif not any(Path(checkpoint).glob("tokenizer*")) and not any(
        Path(checkpoint).glob("vocab*")
    ):
        return None
    try:
        return AutoTokenizer.from_pretrained(checkpoint, **kwargs)
    except (OSError, ValueError) as err:
        if cfg.model.init == "scratch":
            return None
        raise ModelError(f"cannot load the tokenizer of model.checkpoint={checkpoint!r}: {err}"
                         ) from None


def load_tokenizer(cfg: DictConfig, raw: RawData) -> PreTrainedTokenizerBase:
    tokenizer = _checkpoint_tokenizer(cfg)
    if tokenizer is None:
        if cfg.model.init == "pretrained":
            raise ModelError(
                f"model.checkpoint={cfg.model.checkpoint!r} has no tokenizer, and pretrained "
                "weights only make sense with the tokenizer they were trained with. Save it "
                "beside the weights (tokenizer.save_pretrained), or use model.init=scratch."
            )
        tokenizer = _trained_tokenizer(cfg, raw)
    if tokenizer.pad_token is None:  # GPT-2's own tokenizer
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.is_fast and TASKS[cfg.head.task].fast_tokenizer:
        raise ModelError(f"head={cfg.head.task} needs a fast tokenizer (offsets / word ids); "
                         f"{type(tokenizer).__name__} is not one")
    return tokenizer


def config_values(cfg: DictConfig, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """What the model's config must take from the tokenizer."""
    values: dict[str, Any] = {"pad_token_id": tokenizer.pad_token_id}
    if cfg.model.init == "scratch":
        values["vocab_size"] = len(tokenizer)
        asked = cfg.model.config_overrides.get("vocab_size")
        if asked is not None and asked != len(tokenizer):
            log.warning("model.config_overrides.vocab_size=%s is replaced by the tokenizer's "
                        "%d tokens (the embeddings must match the tokenizer)", asked,
                        len(tokenizer))
        for name in ("bos_token_id", "eos_token_id"):
            if getattr(tokenizer, name) is not None:
                values[name] = getattr(tokenizer, name)
        if family_of(cfg).encoder_decoder:  # T5 starts decoding from the pad token
            values["decoder_start_token_id"] = tokenizer.pad_token_id
    return values

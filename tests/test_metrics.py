"""Metrics per head: known values worked out by hand, and every error case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runner.tasks.metrics import (
    bleu_metrics,
    classification_metrics,
    entity_metrics,
    language_model_metrics,
    regression_metrics,
    squad_metrics,
)


def assert_plain_floats(scores: dict[str, float]) -> None:
    assert all(type(value) is float for value in scores.values()), scores


# --- classification ---------------------------------------------------------------------------


def test_classification_accuracy_and_macro_f1_by_hand():
    # class 0: P=1 R=1 F1=1; class 1: P=1 R=1/2 F1=2/3; class 2: P=1/2 R=1 F1=2/3
    scores = classification_metrics([0, 1, 2, 2], [0, 1, 1, 2], num_labels=3)
    assert scores == pytest.approx({"accuracy": 0.75, "f1_macro": (1 + 2 / 3 + 2 / 3) / 3})
    assert_plain_floats(scores)


def test_classification_binary_with_a_class_never_predicted():
    # class 0: P=3/4 R=1 F1=6/7; class 1 occurs but is never predicted: F1=0
    scores = classification_metrics(np.array([0, 0, 0, 0]), np.array([0, 1, 0, 0]), num_labels=2)
    assert scores == pytest.approx({"accuracy": 0.75, "f1_macro": 3 / 7})
    assert_plain_floats(scores)


def test_classification_class_absent_everywhere_is_left_out_of_the_macro_average():
    # torchmetrics' convention: class 2 has no TP, FP or FN, so it does not drag the mean down.
    scores = classification_metrics([0, 0, 0, 0], [0, 1, 0, 0], num_labels=3)
    assert scores["f1_macro"] == pytest.approx(3 / 7)


def test_classification_perfect_predictions():
    assert classification_metrics([1, 0, 1], [1, 0, 1], num_labels=2) == {
        "accuracy": 1.0,
        "f1_macro": 1.0,
    }


@pytest.mark.parametrize(
    ("predictions", "references", "num_labels", "message"),
    [
        ([], [], 2, "empty"),
        ([0, 1], [0], 2, "2 predictions but 1 references"),
        ([0, 3], [0, 1], 3, r"class ids \[3\] outside 0..2"),
        ([0, 1], [-1, 1], 2, r"class ids \[-1\]"),
        ([0, 1], [0, 1], 1, "at least 2"),
        ([0.2, 0.8], [0, 1], 2, "integer class ids"),
        ([[0, 1]], [[0, 1]], 2, "1-D"),
    ],
)
def test_classification_rejects_bad_input(predictions, references, num_labels, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(predictions, references, num_labels)


# --- regression and language modelling --------------------------------------------------------


def test_regression_mse_and_correlations_by_hand():
    scores = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    # deviations (-1, 0, 1) and (-5/3, -2/3, 7/3): r = 4 / sqrt(2 * 78/9); the ranks agree
    assert scores == pytest.approx({"mse": 4 / 3, "pearson": 4 / math.sqrt(2 * 78 / 9),
                                    "spearman": 1.0})
    assert_plain_floats(scores)


def test_regression_spearman_reads_ranks_and_matches_scipy():
    import scipy.stats

    preds, target = [0.1, 0.4, 0.35, 0.8, 0.2], [0.0, 1.0, 2.0, 3.0, 0.5]
    scores = regression_metrics(preds, target)
    assert scores["spearman"] == pytest.approx(scipy.stats.spearmanr(preds, target).statistic)
    assert scores["pearson"] == pytest.approx(scipy.stats.pearsonr(preds, target).statistic)
    # rank differences (0, 1, -1, 0, 0): 1 - 6 * 2 / (5 * 24)
    assert scores["spearman"] == pytest.approx(0.9)


def test_regression_correlation_of_a_constant_prediction_is_nan():
    scores = regression_metrics([0.5, 0.5, 0.5], [1.0, 2.0, 3.0])
    assert math.isnan(scores["pearson"]) and math.isnan(scores["spearman"])
    assert scores["mse"] == pytest.approx((0.25 + 2.25 + 6.25) / 3)


def test_regression_accepts_column_shaped_model_outputs():
    scores = regression_metrics(np.array([[0.5], [1.5]]), np.array([0.0, 2.0]))
    assert scores["mse"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [([], [], "empty"), ([1.0, 2.0], [1.0], "2 predictions but 1 references")],
)
def test_regression_rejects_bad_input(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        regression_metrics(predictions, references)


def test_language_model_perplexity_is_exp_of_loss():
    scores = language_model_metrics(2.0)
    assert scores == pytest.approx({"loss": 2.0, "perplexity": math.e**2})
    assert language_model_metrics(0.0)["perplexity"] == 1.0
    assert_plain_floats(scores)


def test_language_model_perplexity_overflows_to_inf():
    assert language_model_metrics(1000.0) == {"loss": 1000.0, "perplexity": math.inf}


# --- BLEU -------------------------------------------------------------------------------------


def test_bleu_of_identical_sentences_is_100():
    sentences = ["the cat sat on the mat today", "a quick brown fox jumps over the dog"]
    scores = bleu_metrics(sentences, sentences)
    assert scores["bleu"] == pytest.approx(100.0)
    assert_plain_floats(scores)


def test_bleu_of_disjoint_sentences_is_zero():
    scores = bleu_metrics(["alpha beta gamma delta epsilon"], ["one two three four five"])
    assert scores["bleu"] == pytest.approx(0.0, abs=1e-9)


def test_bleu_short_hypothesis_is_scaled_by_the_brevity_penalty():
    # Every n-gram of the 6-word hypothesis is in the 7-word reference: precisions are all 1,
    # so BLEU = brevity penalty = exp(1 - 7/6).
    scores = bleu_metrics(["the cat sat on the mat"], ["the cat sat on the mat today"])
    assert scores["bleu"] == pytest.approx(100 * math.exp(1 - 7 / 6))


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ([], [], "empty"),
        (["a b c d"], ["a b c d", "e f g h"], "1 predictions but 2 references"),
        (["a b c d"], [None], r"references\[0\] must be a string"),
    ],
)
def test_bleu_rejects_bad_input(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        bleu_metrics(predictions, references)


# --- SQuAD ------------------------------------------------------------------------------------


def test_squad_normalisation_ignores_case_punctuation_and_articles():
    scores = squad_metrics({"q1": "The Cat!"}, {"q1": ["cat"]})
    assert scores == {"exact_match": 1.0, "f1": 1.0}  # fractions, as accuracy and seqeval F1
    assert_plain_floats(scores)
    assert squad_metrics({"q1": "  an  apple, "}, {"q1": ["Apple"]})["exact_match"] == 1.0


def test_squad_partial_overlap_f1_by_hand():
    # "the big red house" -> [big, red, house]; "red house of cards" -> [red, house, of, cards]
    # common = 2, precision = 2/3, recall = 2/4, F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    scores = squad_metrics({"q1": "the big red house"}, {"q1": ["red house of cards"]})
    assert scores["exact_match"] == 0.0
    assert scores["f1"] == pytest.approx(4 / 7)


def test_squad_takes_the_best_gold_answer_and_averages_over_examples():
    predictions = {"q1": "big red house", "q2": "nothing alike", "q3": "Paris"}
    references = {
        "q1": ["something else", "the big red house"],
        "q2": ["red house"],
        "q3": ["in Paris", "Paris, France"],  # best F1: 2 * (1 * 1/2) / (1 + 1/2) = 2/3
    }
    scores = squad_metrics(predictions, references)
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)


def test_squad_empty_prediction_against_article_only_answer_follows_torchmetrics():
    # Both sides normalise to nothing: torchmetrics scores F1 1 (100%), the official v1.1 script 0.
    # Pinned so that a change of convention upstream is noticed.
    assert squad_metrics({"q1": ""}, {"q1": ["the"]}) == {"exact_match": 1.0, "f1": 1.0}


def test_squad_empty_prediction_scores_zero():
    assert squad_metrics({"q1": ""}, {"q1": ["cat"]}) == {"exact_match": 0.0, "f1": 0.0}


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ({}, {}, "empty"),
        ({"q1": "a", "q9": "b"}, {"q1": ["a"]}, r"predicted but missing from references: 'q9'"),
        ({"q1": "a"}, {"q1": ["a"], "q2": ["b"]}, r"in references but not predicted: 'q2'"),
        ({"q1": "a"}, {"q1": []}, "non-empty list of gold answers"),
        ({"q1": "a"}, {"q1": "a"}, "non-empty list of gold answers"),
    ],
)
def test_squad_rejects_bad_input(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        squad_metrics(predictions, references)


# --- entities (seqeval) -----------------------------------------------------------------------


def test_entity_metrics_by_hand():
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    predictions = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O", "B-MISC"]]
    # gold entities: PER, LOC, ORG (2 tokens); predicted: PER (right), ORG (1 token: wrong
    # boundary), MISC (spurious). TP = 1 of 3 predicted and 3 gold.
    # tokens: 3 of 4 right in the first sentence, 1 of 3 in the second.
    scores = entity_metrics(predictions, references)
    assert scores == pytest.approx(
        {"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3, "accuracy": 4 / 7}
    )
    assert_plain_floats(scores)


def test_entity_metrics_accept_an_entity_that_starts_with_an_inside_tag():
    # seqeval's default, conlleval-compatible mode reads a leading I-PER as the start of PER.
    scores = entity_metrics([["I-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
    assert scores["f1"] == 1.0


@pytest.mark.filterwarnings("error")
def test_entity_metrics_with_nothing_predicted_are_zero_without_warnings():
    scores = entity_metrics([["O", "O"]], [["B-PER", "O"]])
    assert scores == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.5}


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ([], [], "empty"),
        ([[], []], [[], []], "no tags"),
        ([["O"]], [["O"], ["O"]], "1 predictions but 2 references"),
        ([["O"], ["O", "O"]], [["O"], ["O"]], "sequence 1 has 2 predicted tags but 1 reference"),
    ],
)
def test_entity_metrics_reject_bad_input(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        entity_metrics(predictions, references)

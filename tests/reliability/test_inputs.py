"""Inputs a user brings, checked before any compute: every value runner can check is
refused with the file, the row and the fix (exit 2); the formats of the Hugging Face example
scripts (SQuAD v2, CoNLL column files, the original GLUE column names) are read as those
scripts read them. Real files in tmp_path; real commands where the exit code is the point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import compose, fast
from runner.config.validate import validate
from runner.data.load import load_data
from runner.errors import ConfigError, DataError, ModelError

SAMPLE_QA = Path(__file__).resolve().parents[2] / "src/runner/data/sample_data/qa"


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(tmp_path: Path, head: str, train: str, validation: str, suffix: str,
         *extra: str):
    """load_data on a train and a validation file written into tmp_path."""
    args = ["data=local", f"head={head}",
            f"data.train_file={write(tmp_path / f'train.{suffix}', train)}",
            f"data.validation_file={write(tmp_path / f'val.{suffix}', validation)}", *extra]
    return load_data(compose(args))


def refused(tmp_path, *args, error=DataError) -> str:
    with pytest.raises(error) as info:
        load(tmp_path, *args)
    return str(info.value)


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# ----------------------------------------------------------------------- composition (exit 2)


@pytest.mark.parametrize("override,listed", [("freeze=nope", "head_only"),
                                             ("experiment=nope", "minilm_qa")])
def test_composition_errors_exit_2_listing_the_choices(tmp_path, override, listed):
    done = subprocess.run([sys.executable, "-m", "runner", override], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Available options" in done.stderr and listed in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------- config values (item 10)


def problems(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        validate(compose(overrides))
    return str(info.value)


def test_negative_seed_is_a_config_error():
    assert "trainer.seed: -1 must be >= 0" in problems(["trainer.seed=-1"])


def test_one_label_without_regression_is_a_config_error():
    assert "head.regression=true" in problems(["head.num_labels=1"])
    validate(compose(["head.num_labels=1", "head.regression=true"]))  # regression: fine


def test_output_dir_under_a_file_is_a_config_error(tmp_path):
    write(tmp_path / "afile", "x")
    message = problems([f"trainer.output_dir={tmp_path / 'afile' / 'run'}"])
    assert "afile is a file" in message and "trainer.output_dir" in message


@pytest.mark.parametrize("config,expected", [
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"model_type": "bert", "hidden_size": "big"}', "hidden_size='big' is not a positive"),
    ('{"model_type": "bert", "num_hidden_layers": 2.5}', "num_hidden_layers=2.5 is not a"),
])
def test_checkpoint_config_that_is_no_object_or_has_bad_sizes(tmp_path, config, expected):
    (tmp_path / "ckpt").mkdir()
    write(tmp_path / "ckpt" / "config.json", config)
    assert expected in problems(["model=bert", f"model.checkpoint={tmp_path / 'ckpt'}"])


def test_checkpoint_config_that_is_no_object_is_refused_by_the_build_too(tmp_path):
    from runner.config.families import FAMILIES
    from runner.model.build import check_local_checkpoint

    (tmp_path / "ckpt").mkdir()
    write(tmp_path / "ckpt" / "config.json", '"a string"')
    with pytest.raises(ModelError, match="holds a JSON str"):
        check_local_checkpoint(tmp_path / "ckpt", FAMILIES["bert"])


# ------------------------------------------------------------------------ labels (items 6, 10)


def test_integer_validation_label_never_seen_in_training(tmp_path):
    message = refused(tmp_path, "seqcls", "text\tlabel\na\t0\nb\t1\n",
                      "text\tlabel\nc\t0\nd\t2\n", "tsv", "head.num_labels=3")
    assert "val.tsv, row 2: label 2 never occurs in the training data" in message


def test_single_class_data_is_refused(tmp_path):
    message = refused(tmp_path, "seqcls", "text\tlabel\na\tgood\nb\tgood\n",
                      "text\tlabel\nc\tgood\n", "tsv")
    assert "every label is 'good'" in message and "at least 2 classes" in message
    # ... unless the head says how many classes there are
    raw = load(tmp_path, "seqcls", "text\tlabel\na\tgood\nb\tgood\n", "text\tlabel\nc\tgood\n",
               "tsv", "head.num_labels=2")
    assert raw.labels.num_labels == 2


@pytest.mark.parametrize("labels", [(0, "positive", 0), ("1", "positive", "positive")])
def test_mixed_integer_and_string_labels_say_so(tmp_path, labels):
    # JSON numbers beside names, and (as a csv gives them) number strings beside names
    *train, validation = labels
    message = refused(tmp_path, "seqcls", jsonl([{"text": t, "label": y}
                                                 for t, y in zip("ab", train, strict=True)]),
                      jsonl([{"text": "c", "label": validation}]), "jsonl")
    assert "names" in message and "numbers" in message and "Use one kind" in message
    assert "Classification needs integer or string labels" not in message


# ------------------------------------------------------------------- texts and translations


def test_null_text_names_the_row(tmp_path):
    train = jsonl([{"text": "a", "label": 0}, {"text": None, "label": 1}])
    message = refused(tmp_path, "seqcls", train, jsonl([{"text": "c", "label": 0}]), "jsonl")
    assert "train.jsonl, row 2: the text is missing (null)" in message


@pytest.mark.parametrize("row,expected", [({"en": "Hi."}, "no 'de' text"),
                                          ({"en": "Hi.", "de": None}, "no 'de' text")])
def test_translation_row_without_its_target(tmp_path, row, expected):
    train = jsonl([{"translation": {"en": "Yes.", "de": "Ja."}}, {"translation": row}])
    message = refused(tmp_path, "seq2seq", train, jsonl([{"translation": {"en": "No.",
                                                                          "de": "Nein."}}]),
                      "jsonl")
    assert f"train.jsonl, row 2: the translation has {expected}" in message


def test_translation_file_with_one_language_says_there_is_no_target(tmp_path):
    one = jsonl([{"translation": {"en": "Yes."}}, {"translation": {"en": "No."}}])
    message = refused(tmp_path, "seq2seq", one, one, "jsonl")
    assert "row 1: the translation holds one language only (['en'])" in message
    assert "not None" not in message


# ------------------------------------------------------------------- misleading messages


def test_a_directory_is_not_reported_as_missing(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError) as info:
        load_data(compose(["data=local", f"data.train_file={tmp_path / 'folder'}"]))
    assert "is a directory, not a file" in str(info.value)
    assert "does not exist" not in str(info.value)


def test_json_named_csv_is_called_json(tmp_path):
    rows = jsonl([{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    message = refused(tmp_path, "seqcls", rows, rows, "csv")
    assert "looks like JSON" in message and "data.format=json" in message
    assert "has no rows" not in message


# --------------------------------------------------------------------- extractive QA (item 6)


def squad(questions: list[tuple[str, list[tuple[str, int]]]], context: str) -> str:
    qas = [{"id": f"q{i}", "question": q,
            "answers": [{"text": t, "answer_start": s} for t, s in answers]}
           for i, (q, answers) in enumerate(questions)]
    return json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]})


CONTEXT = "Ada Lovelace wrote the first program in 1843."


@pytest.mark.parametrize("answer,expected", [
    (("Lovelace", 0), "the answer 'Lovelace' is not the text at answer_start 0"),
    (("1843", 400), "answer_start 400 of the answer '1843' is outside its context"),
    (("1843", -1), "answer_start -1 of the answer '1843' is outside"),
])
def test_answer_spans_must_be_their_context_text(tmp_path, answer, expected):
    good = squad([("Who?", [("Ada Lovelace", 0)])], CONTEXT)
    bad = squad([("Who?", [("Ada Lovelace", 0)]), ("When?", [answer])], CONTEXT)
    message = refused(tmp_path, "qa", good, bad, "json")
    assert f"val.json, row 2: {expected}" in message


def test_unanswerable_questions_need_version_2(tmp_path):
    v2 = squad([("Who?", [("Ada Lovelace", 0)]), ("Where?", [])], CONTEXT)
    message = refused(tmp_path, "qa", v2, v2, "json")
    assert "row 2: the question has no answer" in message
    assert "head.version_2_with_negative=true" in message
    raw = load(tmp_path, "qa", v2, v2, "json", "head.version_2_with_negative=true")
    assert raw.validation["answers"][1] == {"text": [], "answer_start": []}


def squad_v2_sample(path: Path, source: str, every: int = 3) -> str:
    """The bundled SQuAD sample with every `every`-th question made unanswerable."""
    document = json.loads((SAMPLE_QA / source).read_text())
    n = 0
    for article in document["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                n += 1
                if n % every == 0:
                    qa["answers"] = []
    return write(path, json.dumps(document))


def test_squad_v2_trains_and_scores_with_no_answer(tmp_path):
    from runner.run import run

    train = squad_v2_sample(tmp_path / "train-v2.json", "train.json")
    val = squad_v2_sample(tmp_path / "val-v2.json", "validation.json")
    out = tmp_path / "run"
    run(compose([*fast("qa", "bert", "data.max_length=96", "trainer.max_epochs=1"),
                 "data=local", f"data.train_file={train}", f"data.validation_file={val}",
                 "head.version_2_with_negative=true", f"trainer.output_dir={out}",
                 "logger=none"]))
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "FINISHED"
    assert 0 <= info["metrics"]["eval/exact_match"] <= info["metrics"]["eval/f1"] <= 1


def test_no_answer_wins_when_its_score_beats_the_best_span():
    import numpy as np

    from runner.tasks.qa_windows import postprocess_predictions

    examples = [{"id": "e", "context": "alpha beta"}]
    features = [{"example_id": "e", "offset_mapping": [None, (0, 5), (6, 10)],
                 "cls_index": 0}]
    start, end = np.array([5.0, 1.0, 0.0]), np.array([5.0, 0.0, 1.0])
    v1 = postprocess_predictions(examples, features, [start], [end])
    v2 = postprocess_predictions(examples, features, [start], [end],
                                 null_score_diff_threshold=0.0)
    lenient = postprocess_predictions(examples, features, [start], [end],
                                      null_score_diff_threshold=100.0)
    assert v1 == {"e": "alpha beta"} and v2 == {"e": ""} and lenient == v1


def test_squad_v2_scores_an_empty_prediction_for_no_answer():
    from runner.tasks.metrics import squad_metrics

    scores = squad_metrics({"a": "", "b": "x", "c": "cat", "d": ""},
                           {"a": [], "b": [], "c": ["the cat"], "d": ["cat"]}, no_answer=True)
    assert scores == {"exact_match": 0.5, "f1": 0.5}
    with pytest.raises(ValueError):
        squad_metrics({"a": ""}, {"a": []})  # SQuAD v1 has no unanswerable questions


# ------------------------------------------------------------------------- CoNLL, GLUE names


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
# NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""

GERMEVAL = ("#\thttp://de.wikipedia.org/wiki/X [2009-10-17]\n1\tSchartau\tB-PER\tO\n"
            "2\tsagte\tO\tO\n3\tin\tO\tO\n4\tBerlin\tB-LOC\tO\n\n"
            "#\thttp://de.wikipedia.org/wiki/Y [2009-10-17]\n1\tPeter\tB-PER\tO\n"
            "2\tkam\tO\tO\n")


def test_conll_2003_column_files(tmp_path):
    raw = load(tmp_path, "tokencls", CONLL, CONLL, "conll")
    assert raw.train["tokens"][:] == [["EU", "rejects", "German", "#"], ["Peter", "Blackburn"]]
    names = raw.labels.names
    assert [names[t] for t in raw.train["tags"][0]] == ["B-ORG", "O", "B-MISC", "O"]


def test_germeval_column_files_with_positions_and_comments(tmp_path):
    raw = load(tmp_path, "tokencls", GERMEVAL, GERMEVAL, "tsv", "data.format=conll")
    assert raw.train["tokens"][:] == [["Schartau", "sagte", "in", "Berlin"], ["Peter", "kam"]]
    assert [raw.labels.names[t] for t in raw.train["tags"][1]] == ["B-PER", "O"]
    # the nested (inner) tags instead, by naming the columns
    named = load(tmp_path, "tokencls", GERMEVAL, GERMEVAL, "tsv", "data.format=conll",
                 "data.column_names=[index,tokens,outer,ner_tags]")
    assert named.labels.names == ["O"]


def test_conll_line_with_a_missing_column_names_the_line(tmp_path):
    message = refused(tmp_path, "tokencls", CONLL + "Smith NNP\n", CONLL, "conll")
    assert "train.conll, line 10: 2 columns where the file has 4" in message


@pytest.mark.parametrize("header,row", [
    ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "{i}\t1\t2\tq {i}\tr {i}\t{y}"),
    ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "{y}\t1\t2\ts {i}\tt {i}"),
    ("sentence1\tsentence2\tgold_label", "p {i}\th {i}\t{name}"),
])
def test_original_glue_column_names(tmp_path, header, row):
    text = header + "\n" + "".join(
        row.format(i=i, y=i % 2, name=["entailment", "neutral"][i % 2]) + "\n" for i in range(4))
    raw = load(tmp_path, "seqcls", text, text, "tsv")
    assert raw.train["text"][0].endswith(" 0") and raw.train["text_pair"][0].endswith(" 0")
    assert raw.labels.num_labels == 2


# ---------------------------------------------------------------- a trained tokenizer repeats


@pytest.mark.parametrize("kind,family", [("wordpiece", "bert"), ("unigram", "t5"),
                                         ("bpe", "gpt2")])
def test_a_tokenizer_trained_twice_on_the_same_data_is_the_same(kind, family):
    # WordPiece and Unigram trainers number tokens in the order of a hash map seeded afresh
    # each time; before runner fixed the order, three trainings gave three tokenizers.
    from runner.data.tokenizer import train_tokenizer

    rows = (SAMPLE_QA.parent / "translation" / "train.jsonl").read_text().splitlines()[:400]
    texts = [t for r in rows for t in json.loads(r)["translation"].values()]
    built = {train_tokenizer(kind, family, texts, 300, 1).backend_tokenizer.to_str()
             for _ in range(3)}
    assert len(built) == 1


def test_one_row_without_a_validation_file_says_why_nothing_is_left(tmp_path):
    one_row = write(tmp_path / "one.csv", "text,label\na,0\n")
    with pytest.raises(DataError) as info:
        load_data(compose(["data=local", f"data.train_file={one_row}"]))
    assert "has 1 row and no validation file" in str(info.value)

"""Reading and checking data, as a user's files come: every check names file, row and fix."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import compose
from runner.data.load import load_data
from runner.errors import DataError


def local(tmp_path, train: str, validation: str | None = None, *extra: str, name="train.tsv"):
    (tmp_path / name).write_text(train)
    args = ["data=local", f"data.train_file={tmp_path / name}", *extra]
    if validation is not None:
        suffix = name.rsplit(".", 1)[-1]
        (tmp_path / f"val.{suffix}").write_text(validation)
        args.append(f"data.validation_file={tmp_path / f'val.{suffix}'}")
    return load_data(compose(args))


def test_headerless_tsv_with_string_labels_maps_names_in_sorted_order(tmp_path):
    raw = local(tmp_path, "great film\tpos\nawful plot\tneg\nfine cast\tmeh\n",
                "lovely\tpos\ndull\tneg\n", "data.header=false")
    assert raw.labels.names == ["meh", "neg", "pos"]
    assert raw.train["label"][:] == [2, 1, 0]
    assert raw.validation["text"][:] == ["lovely", "dull"]


def test_integer_label_out_of_range_names_the_row_and_value(tmp_path):
    with pytest.raises(DataError) as info:
        local(tmp_path, "text\tlabel\na\t0\nb\t1\nc\t5\n", "text\tlabel\nd\t0\n",
              "head.num_labels=2")
    message = str(info.value)
    assert "train.tsv, row 3: label 5 is outside 0..1" in message
    assert "head.num_labels=6" in message


def test_more_string_classes_than_num_labels(tmp_path):
    with pytest.raises(DataError, match="has 3 classes.*head.num_labels=2"):
        local(tmp_path, "text\tlabel\na\tx\nb\ty\nc\tz\n", "text\tlabel\nd\tx\n",
              "head.num_labels=2")


def test_float_labels_need_regression(tmp_path):
    data = "text\tlabel\na\t0.5\nb\t1.25\n"
    with pytest.raises(DataError, match="row 1: label 0.5 is not a class id.*regression=true"):
        local(tmp_path, data, data)
    raw = local(tmp_path, data, data, "head.regression=true")
    assert raw.labels.regression and raw.train["label"][:] == [0.5, 1.25]


def test_missing_column_lists_the_columns_found(tmp_path):
    with pytest.raises(DataError) as info:
        local(tmp_path, "review\tstars\ngood\t1\n", "review\tstars\nbad\t0\n")
    assert "no label column" in str(info.value)
    assert "Columns found: review, stars" in str(info.value)
    assert "data.columns.label=<column>" in str(info.value)


def test_column_mapping(tmp_path):
    raw = local(tmp_path, "review\tstars\ngood\t1\nbad\t0\n", "review\tstars\nok\t1\n",
                "data.columns.label=stars")
    assert raw.train["text"][:] == ["good", "bad"] and raw.train["label"][:] == [1, 0]


def test_empty_split_is_an_error(tmp_path):
    with pytest.raises(DataError, match="val.tsv has no rows"):
        local(tmp_path, "text\tlabel\na\t0\n", "text\tlabel\n")


def test_malformed_json_line_gives_file_and_line(tmp_path):
    good = json.dumps({"text": "fine", "label": 0})
    with pytest.raises(DataError) as info:
        local(tmp_path, f"{good}\n{good}\n{{'text': broken\n", name="train.jsonl")
    assert "train.jsonl, line 3: not valid JSON" in str(info.value)


def test_missing_data_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(compose(["data=local", f"data.train_file={tmp_path / 'nope.csv'}"]))


def test_validation_is_held_out_when_missing(tmp_path):
    rows = "".join(f"text {i}\t{i % 2}\n" for i in range(50))
    raw = local(tmp_path, "text\tlabel\n" + rows, None, "data.validation_fraction=0.2")
    assert (len(raw.train), len(raw.validation)) == (40, 10)
    assert not set(raw.train["text"][:]) & set(raw.validation["text"][:])


def test_glue_style_sentence_pairs(tmp_path):
    tsv = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA cat sat.\tA cat was sitting.\n"
    raw = local(tmp_path, tsv, tsv, "data.columns.text='#1 String'",
                "data.columns.text_pair='#2 String'", "data.columns.label=Quality")
    assert raw.train[0] == {"text": "A cat sat.", "text_pair": "A cat was sitting.", "label": 1}


def test_csv_and_parquet(tmp_path):
    frame = pd.DataFrame({"sentence": ["a b", "c d"], "label": [0, 1]})
    frame.to_parquet(tmp_path / "train.parquet")
    frame.to_csv(tmp_path / "val.csv", index=False)
    raw = load_data(compose(["data=local", f"data.train_file={tmp_path / 'train.parquet'}",
                             f"data.validation_file={tmp_path / 'val.csv'}"]))
    assert raw.train["text"][:] == ["a b", "c d"] and raw.validation["label"][:] == [0, 1]


def test_squad_json(tmp_path):
    doc = {"data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": "Where is Paris?",
         "answers": [{"text": "France", "answer_start": 12}]}]}]}]}
    (tmp_path / "squad.json").write_text(json.dumps(doc))
    raw = load_data(compose(["head=qa", "data=local", f"data.train_file={tmp_path / 'squad.json'}",
                             f"data.validation_file={tmp_path / 'squad.json'}"]))
    assert raw.train[0]["answers"] == {"text": ["France"], "answer_start": [12]}
    assert raw.train[0]["id"] == "q1"


def test_translation_jsonl(tmp_path):
    rows = [{"translation": {"en": "the cat", "ro": "pisica"}}] * 3
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = load_data(compose(["model=t5", "head=seq2seq", "data=local",
                             f"data.train_file={tmp_path / 't.jsonl'}",
                             f"data.validation_file={tmp_path / 't.jsonl'}"]))
    assert raw.train[0] == {"source": "the cat", "target": "pisica"}
    with pytest.raises(DataError, match="languages \\['en', 'ro'\\], not 'de'"):
        load_data(compose(["model=t5", "head=seq2seq", "data=local", "data.target_lang=de",
                           f"data.train_file={tmp_path / 't.jsonl'}"]))


def test_token_tags_as_strings_and_as_integers(tmp_path):
    rows = [{"tokens": ["John", "lives", "in", "Paris"], "ner_tags": [1, 0, 0, 2]}]
    (tmp_path / "n.jsonl").write_text(json.dumps(rows[0]) + "\n")
    args = ["head=tokencls", "data=local", f"data.train_file={tmp_path / 'n.jsonl'}",
            f"data.validation_file={tmp_path / 'n.jsonl'}"]
    with pytest.raises(DataError, match="head.label_names"):
        load_data(compose(args))
    raw = load_data(compose([*args, "head.label_names=[O,B-PER,B-LOC]"]))
    assert raw.labels.names == ["O", "B-PER", "B-LOC"] and raw.train[0]["tags"] == [1, 0, 0, 2]
    named = {"tokens": ["Ann", "Smith", "met", "Bob"], "ner_tags": ["B-PER", "I-PER", "O", "B-PER"]}
    (tmp_path / "n.jsonl").write_text(json.dumps(named) + "\n")
    raw = load_data(compose(args))
    assert raw.labels.names == ["O", "B-PER", "I-PER"]
    assert raw.train[0]["tags"] == [1, 2, 0, 1]


def test_sample_data_for_every_head():
    for head, size in (("seqcls", 1000), ("qa", 500), ("seq2seq", 1000), ("causal_lm", 300),
                       ("tokencls", 1000)):
        raw = load_data(compose([f"head={head}"]))
        assert len(raw.train) >= size and len(raw.validation) > 0, head
    raw = load_data(compose(["head=seqcls"]))
    assert raw.labels.names == ["negative", "positive"]


def test_hub_dataset_offline_fails_with_what_to_do_instead():
    with pytest.raises(DataError) as info:
        load_data(compose(["data=hub", "data.hub_name=glue", "data.hub_config=sst2"]))
    message = str(info.value)
    assert "cannot load data.hub_name='glue' (data.hub_config='sst2')" in message
    assert "data=local data.train_file=" in message

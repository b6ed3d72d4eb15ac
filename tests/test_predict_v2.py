"""`runner.predict` on a SQuAD v2 run decides "no answer" as training's evaluation does.

One tiny QA run trained on the bundled sample with every third question made unanswerable;
its validation rows are also its test split. The oracles: the test split's score from
training, and qa_windows' post-processing of the plain transformers model's logits.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from conftest import compose, fast
from runner.data.load import SAMPLE_DIR, _read_json
from runner.predict import main as predict_main
from runner.predict import predict_file
from runner.run import run
from runner.tasks import metrics, qa_windows

ROWS = 8
MAX_LENGTH, STRIDE = 96, 16


def _v2_rows(source: str, count: int) -> list[dict]:
    rows = _read_json(SAMPLE_DIR / "qa" / source)[:count]
    for i, row in enumerate(rows):
        if i % 3 == 2:
            row["answers"] = {"text": [], "answer_start": []}
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v2")
    train = _write(folder / "train.jsonl", _v2_rows("train.json", 48))
    test = _write(folder / "test.jsonl", _v2_rows("validation.json", ROWS))
    out = folder / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNNER_CACHE_DIR", str(folder / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        run(compose([*fast("qa", "bert", f"data.max_length={MAX_LENGTH}", "freeze=none",
                           "data.max_train_samples=24",
                           "trainer.lr=1e-3", "trainer.max_epochs=1",
                           "trainer.eval_batch_size=1"),
                     "data=local", f"data.train_file={train}", f"data.validation_file={test}",
                     f"data.test_file={test}", "head.version_2_with_negative=true",
                     f"trainer.output_dir={out}", "logger=none"]))
    return out, test


def _oracle(run_dir: Path, rows: list[dict]):
    """Training's post-processing of the saved model's logits, one window at a time:
    threshold -> {row id: answer}, and each row's null score minus its best span's."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(run_dir / "model").eval()
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    columns = {k: [r[k] for r in rows] for k in ("id", "question", "context")}
    windows = qa_windows.prepare_eval_features(columns, tok, MAX_LENGTH, STRIDE)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in windows]
    starts, ends, meta = [], [], []
    for i, ids in enumerate(windows["input_ids"]):
        with torch.no_grad():
            out = model(**{k: torch.tensor([windows[k][i]]) for k in names})
        starts.append(out.start_logits[0].numpy())
        ends.append(out.end_logits[0].numpy())
        meta.append({"example_id": windows["example_id"][i],
                     "offset_mapping": windows["offset_mapping"][i],
                     "cls_index": qa_windows.no_answer_index(ids, tok)})

    def answers(threshold):
        return qa_windows.postprocess_predictions(rows, meta, starts, ends,
                                                  null_score_diff_threshold=threshold)

    grouped = qa_windows.group_by_example(meta)
    best = qa_windows.best_spans(rows, grouped, starts, ends, n_best=20, max_answer_length=30)
    diffs = [min(float(starts[i][c] + ends[i][c]) for i, _, c in grouped[r["id"]])
             - best[r["id"]].score for r in rows]
    return answers, diffs


def _predict(run_dir: Path, test: Path, out: Path, threshold=None) -> list[dict]:
    assert predict_file(str(run_dir), str(test), str(out), [], batch_size=1,
                        null_score_diff_threshold=threshold) == ROWS
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_predict_decides_no_answer_as_the_v2_evaluation_does(v2_run, tmp_path):
    run_dir, test = v2_run
    rows = [json.loads(line) for line in test.read_text().splitlines()]
    answers, diffs = _oracle(run_dir, rows)

    # The run's own threshold (0): the answers evaluation scored, and their test score.
    saved = _predict(run_dir, test, tmp_path / "saved.jsonl")
    expected = answers(0.0)
    assert expected != answers(None)  # the decision changes answers: best spans would fail
    assert [p["answer"] for p in saved] == [expected[r["id"]] for r in rows]
    assert all(p["no_answer"] == (p["answer"] == "") for p in saved)
    assert all(p["start"] is None and p["score"] is None for p in saved if p["no_answer"])
    got = metrics.squad_metrics({r["id"]: p["answer"] for p, r in zip(saved, rows, strict=True)},
                                {r["id"]: r["answers"]["text"] for r in rows}, no_answer=True)
    tested = json.loads((run_dir / "run.json").read_text())["metrics"]
    assert got["exact_match"] == pytest.approx(tested["test/exact_match"], abs=1e-6)
    assert got["f1"] == pytest.approx(tested["test/f1"], abs=1e-6)

    # A threshold between the rows' score differences: some rows answer, some do not.
    ordered = sorted(diffs)
    assert ordered[3] < ordered[4], ordered
    middle = (ordered[3] + ordered[4]) / 2
    mixed = _predict(run_dir, test, tmp_path / "mixed.jsonl", middle)
    expected = answers(middle)
    assert [p["answer"] for p in mixed] == [expected[r["id"]] for r in rows]
    assert sum(p["no_answer"] for p in mixed) == 4

    # inf: always the best span (as a v1 run); -inf: never an answer (the flag, parsed).
    spans = _predict(run_dir, test, tmp_path / "spans.jsonl", math.inf)
    expected = answers(None)
    assert [p["answer"] for p in spans] == [expected[r["id"]] for r in rows]
    assert all(p["answer"] and not p["no_answer"] for p in spans)
    empty = tmp_path / "empty.jsonl"
    predict_main([str(run_dir), "--input", str(test), "--output", str(empty),
                  "--null-score-diff-threshold=-inf"])
    lines = [json.loads(line) for line in empty.read_text().splitlines()]
    assert lines == [{"answer": "", "start": None, "score": None, "no_answer": True}] * ROWS


def test_the_threshold_flag_is_refused_for_a_run_without_no_answer(v2_run, tmp_path, capsys):
    run_dir, test = v2_run
    v1 = tmp_path / "v1"
    shutil.copytree(run_dir, v1)
    config = v1 / "config.yaml"
    config.write_text(config.read_text().replace("version_2_with_negative: true",
                                                 "version_2_with_negative: false"))
    argv = [str(v1), "--input", str(test), "--output", str(tmp_path / "out.jsonl"),
            "--null-score-diff-threshold", "1.5"]
    with pytest.raises(SystemExit) as stop:
        predict_main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert "--null-score-diff-threshold" in err and "head.version_2_with_negative" in err
    with pytest.raises(SystemExit) as stop:
        predict_main([*argv[:-1], "nan"])
    assert stop.value.code == 2 and "not nan" in capsys.readouterr().err
    # Without the flag the v1 run answers with spans, and no "no_answer" field.
    predict_main(argv[:-2])
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == ROWS and all(set(p) == {"answer", "start", "score"} for p in lines)


def test_the_logged_pyfunc_model_of_a_v2_run_decides_no_answer_by_its_threshold(tmp_path):
    """logger.log_model on a v2 run: the pyfunc model carries the run's threshold and says
    "" where no-answer wins; -inf / +inf give all-empty / all-span answers."""
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from runner.track.model_log import log_model, logged_model_id

    train = _write(tmp_path / "train.jsonl", _v2_rows("train.json", 24))
    test_rows = _v2_rows("validation.json", 4)
    test = _write(tmp_path / "test.jsonl", test_rows)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
        run(compose([*fast("qa", "bert", f"data.max_length={MAX_LENGTH}", "freeze=none",
                           "trainer.max_epochs=1"),
                     "data=local", f"data.train_file={train}", f"data.validation_file={test}",
                     "head.version_2_with_negative=true", "head.null_score_diff_threshold=0.5",
                     f"trainer.output_dir={tmp_path / 'run'}", f"logger.tracking_uri={uri}",
                     "logger.log_model=true"]))
    client = MlflowClient(uri)
    (record,) = client.search_runs([client.get_experiment_by_name("runner").experiment_id])
    model_id = logged_model_id(client, record.info.run_id)
    frame = pd.DataFrame([{"question": r["question"], "context": r["context"]}
                          for r in test_rows])
    answers = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        try:
            logged = mlflow.pyfunc.load_model(f"models:/{model_id}")  # the run's own
            assert logged.model_config == {"head": "qa", "null_score_diff_threshold": 0.5}
            answers["run"] = list(logged.predict(frame))
            for threshold in (-math.inf, math.inf):
                forced = log_model(client, uri, record.info.run_id, tmp_path / "run" / "model",
                                   "qa", "forced", threshold)
                answers[threshold] = list(mlflow.pyfunc.load_model(
                    f"models:/{forced}").predict(frame))
        finally:
            mlflow.set_tracking_uri(None)
    assert len(answers["run"]) == len(test_rows)
    assert answers[-math.inf] == [""] * len(test_rows)
    assert all(a and a in r["context"] for a, r in zip(answers[math.inf], test_rows, strict=True))

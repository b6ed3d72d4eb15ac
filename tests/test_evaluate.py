"""The test split scored after training, `runner.evaluate` and `runner.predict` on finished
runs: one tiny trained run per head, shared by the tests of this module.

The oracles are runner's own numbers from elsewhere: predictions scored with the head's
metric give the test split's score from training; evaluate on the saved model gives the
score training logged; generation matches transformers' own generate.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import compose, fast, mlflow_runs, run_cli
from runner.data.load import SAMPLE_DIR, _read_json
from runner.evaluate import evaluate
from runner.evaluate import main as evaluate_main
from runner.predict import main as predict_main
from runner.predict import predict_file
from runner.run import run
from runner.tasks import metrics

FAMILY = {"seqcls": "bert", "tokencls": "bert", "qa": "bert", "causal_lm": "gpt2",
          "seq2seq": "t5"}
SAMPLE = {"seqcls": "sentiment/validation.jsonl", "tokencls": "ner/validation.jsonl",
          "qa": "qa/validation.json", "causal_lm": "text/validation.txt",
          "seq2seq": "translation/validation.jsonl"}
TEST_ROWS = 8  # also data.max_eval_samples: the test split is the validation split's rows


def _test_file(head: str, folder: Path) -> Path:
    """The first rows of the bundled validation split, as a jsonl test file."""
    source = SAMPLE_DIR / SAMPLE[head]
    if head == "qa":
        rows = _read_json(source)[:TEST_ROWS]
    elif head == "causal_lm":
        rows = [{"text": t} for t in source.read_text().splitlines() if t.strip()][:TEST_ROWS]
    else:
        rows = [json.loads(line) for line in source.read_text().splitlines()[:TEST_ROWS]]
    path = folder / f"{head}-test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _train(folder: Path, head: str, *extra: str) -> Path:
    out = folder / head
    test_file = _test_file(head, folder)
    sizes = ["data.max_length=96"] if head == "qa" else []
    cfg = compose([*fast(head, FAMILY[head], "freeze=none", "trainer.lr=1e-3",
                         "trainer.max_epochs=1", "data.max_train_samples=24",
                         "data.max_eval_samples=8", "trainer.eval_batch_size=1", *sizes),
                   f"data.test_file={test_file}", f"trainer.output_dir={out}",
                   f"logger.tracking_uri=sqlite:///{folder / 'mlflow.db'}", *extra])
    run(cfg)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """head -> its trained run directory (trained on first use, once per module)."""
    folder = tmp_path_factory.mktemp("trained")
    trained: dict[str, Path] = {}

    def get(head: str) -> Path:
        if head not in trained:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("RUNNER_CACHE_DIR", str(folder / "cache"))
                mp.setenv("HF_HUB_OFFLINE", "1")
                mp.delenv("MLFLOW_TRACKING_URI", raising=False)
                trained[head] = _train(folder, head)
        return trained[head]

    return get


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _predict(run_dir: Path, head: str, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    """(the test file's rows, the predictions for them) at one row per batch, as the test
    split was scored, so no padding differs."""
    source = run_dir.parent / f"{head}-test.jsonl"
    out = tmp_path / "predictions.jsonl"
    count = predict_file(str(run_dir), str(source), str(out), [], batch_size=1)
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    assert count == len(predictions) == len(rows) == TEST_ROWS
    return rows, predictions


# ------------------------------------------------------------------ the test split


def test_test_split_is_scored_after_training_and_evaluate_gives_the_same(runs, tmp_path):
    run_dir = runs("seqcls")
    record = _record(run_dir)
    tested = {k: v for k, v in record["metrics"].items() if k.startswith("test/")}
    assert set(tested) == {"test/loss", "test/accuracy", "test/f1_macro"}
    # The test file holds the rows validation was cut to: the same model scores them alike.
    assert tested == pytest.approx({k.replace("eval/", "test/"): v for k, v in
                                    record["metrics"].items() if k.startswith("eval/")})
    client, found = mlflow_runs(run_dir.parent / "mlflow.db")
    (trained,) = [r for r in found if r.info.run_id == record["mlflow_run_id"]]
    assert trained.data.metrics["test/accuracy"] == pytest.approx(tested["test/accuracy"])

    # The saved model, reloaded with the run's own preprocessing, scores what training did.
    scored, where, logged = evaluate(str(run_dir), [])
    assert logged == record["mlflow_run_id"] and where.endswith("seqcls-test.jsonl")
    assert scored == pytest.approx(tested, abs=1e-6)

    # Another file, into a new run tagged with the trained one; the trained run keeps its own.
    other = tmp_path / "other.jsonl"
    other.write_text("".join(f'{{"text": "{t}", "label": "{lab}"}}\n' for t, lab in
                             [("a joy to watch", "positive"), ("dull", "negative")] * 3))
    scored, where, logged = evaluate(str(run_dir), [f"data.test_file={other}"], new_run=True)
    assert logged != record["mlflow_run_id"] and where == str(other)
    new = client.get_run(logged)
    assert new.data.tags["runner.evaluation_of"] == record["mlflow_run_id"]
    assert new.data.tags["runner.head"] == "seqcls" and new.info.status == "FINISHED"
    assert new.data.metrics["test/accuracy"] == pytest.approx(scored["test/accuracy"])
    assert _record(run_dir)["metrics"]["test/accuracy"] == tested["test/accuracy"]


def test_evaluate_logs_to_the_same_run_and_that_value_is_the_latest(runs, tmp_path):
    trained = runs("seqcls")
    run_dir = tmp_path / "copy"  # the same MLflow run; the shared run.json stays as trained
    shutil.copytree(trained, run_dir)
    record = _record(run_dir)
    only_negative = tmp_path / "negative.jsonl"
    only_negative.write_text('{"text": "dull and slow", "label": "negative"}\n' * 4)
    code = _exit_code(evaluate_main, [str(run_dir), f"data.test_file={only_negative}"])
    assert code is None
    client, _ = mlflow_runs(trained.parent / "mlflow.db")
    history = client.get_metric_history(record["mlflow_run_id"], "test/accuracy")
    assert len(history) >= 2  # training's and this one
    latest = client.get_run(record["mlflow_run_id"]).data.metrics["test/accuracy"]
    assert latest == _record(run_dir)["metrics"]["test/accuracy"] in (0.0, 1.0)
    assert _record(run_dir)["test_split"] == str(only_negative)


def test_load_best_scores_the_best_evaluation_and_saves_its_weights(tmp_path):
    out = _train(tmp_path, "seqcls", "trainer.load_best=true", "trainer.eval_strategy=steps",
                 "trainer.eval_steps=1", "trainer.lr=3e-2", "trainer.max_epochs=2")
    record = _record(out)
    client, (trained,) = mlflow_runs(tmp_path / "mlflow.db")
    history = client.get_metric_history(trained.info.run_id, "eval/accuracy")
    by_step = {m.step: m.value for m in history}
    best = max(by_step.values())
    first_best = min(step for step, value in by_step.items() if value == best)
    assert record["best_step"] == first_best
    assert record["metrics"]["eval/accuracy"] == pytest.approx(best)
    # Test rows = validation rows: scored by the best weights, they give the best evaluation.
    assert record["metrics"]["test/accuracy"] == pytest.approx(best)
    assert record["metrics"]["test/loss"] == pytest.approx(record["metrics"]["eval/loss"])
    # The saved model holds the best step's weights, and the test score is theirs.
    from safetensors.torch import load_file

    kept = load_file(str(out / "best" / "trainable.safetensors"))
    saved = load_file(str(out / "model" / "model.safetensors"))
    assert kept and all(torch.equal(kept[k], saved[k]) for k in kept)
    scored, _, _ = evaluate(str(out), [])
    assert scored == pytest.approx({k: v for k, v in record["metrics"].items()
                                    if k.startswith("test/")}, abs=1e-6)


def test_load_best_under_gradual_brings_back_every_tensor_of_an_early_best(tmp_path):
    """The best evaluation is in stage 0 (head only; objective: the lowest accuracy, ties to
    the first), stage 1 trains the whole model: the saved model must be stage 0's weights,
    body included, not stage 0's head over stage 1's body."""
    from safetensors.torch import load_file

    out = tmp_path / "seqcls"
    stages = "[{at_epoch:0,strategy:head_only},{at_epoch:1,strategy:none}]"
    cfg = compose([*fast("seqcls", "bert", "freeze=gradual", f"freeze.stages={stages}",
                         "trainer.lr=1e-2", "trainer.max_epochs=2", "data.max_train_samples=24",
                         f"data.max_eval_samples={TEST_ROWS}", "trainer.load_best=true",
                         "trainer.objective=eval/accuracy", "trainer.objective_mode=min",
                         "trainer.keep_checkpoints=2"),
                   f"data.test_file={_test_file('seqcls', tmp_path)}",
                   f"trainer.output_dir={out}", "logger=none"])
    run(cfg)
    record = _record(out)
    first, last = (load_file(str(p / "model.safetensors"))
                   for p in sorted((out / "checkpoints").glob("step-*")))
    assert record["best_step"] == 3  # the end of epoch 0: 24 rows, batches of 8
    assert (out / "checkpoints" / "step-00000003").is_dir()
    saved = load_file(str(out / "model" / "model.safetensors"))
    body = [k for k in saved if k.startswith("bert.encoder.")]
    assert body and all(not torch.equal(first[k], last[k]) for k in body)  # stage 1 trained
    assert set(saved) == set(first) and all(torch.equal(saved[k], first[k]) for k in saved)
    # The test rows are the validation rows: the restored weights score the best evaluation.
    metrics_ = record["metrics"]
    assert metrics_["test/loss"] == pytest.approx(metrics_["eval/loss"])
    assert metrics_["test/accuracy"] == pytest.approx(metrics_["eval/accuracy"])


# ------------------------------------------------------------------ predict, every head


def test_predict_seqcls_labels_score_the_test_accuracy(runs, tmp_path):
    run_dir = runs("seqcls")
    rows, predictions = _predict(run_dir, "seqcls", tmp_path)
    assert all(0.5 <= p["score"] <= 1 for p in predictions)  # two classes: the top one
    correct = sum(p["label"] == r["label"] for p, r in zip(predictions, rows, strict=True))
    assert correct / len(rows) == pytest.approx(_record(run_dir)["metrics"]["test/accuracy"])


def test_predict_tokencls_tags_score_the_test_f1(runs, tmp_path):
    run_dir = runs("tokencls")
    rows, predictions = _predict(run_dir, "tokencls", tmp_path)
    assert [len(p["tags"]) for p in predictions] == [len(r["tokens"]) for r in rows]
    got = metrics.entity_metrics([p["tags"] for p in predictions], [r["ner_tags"] for r in rows])
    tested = _record(run_dir)["metrics"]
    for key in ("precision", "recall", "f1", "accuracy"):
        assert got[key] == pytest.approx(tested[f"test/{key}"], abs=1e-6), key


def test_predict_qa_spans_score_the_test_exact_match(runs, tmp_path):
    run_dir = runs("qa")
    rows, predictions = _predict(run_dir, "qa", tmp_path)
    for p, r in zip(predictions, rows, strict=True):
        if p["answer"]:
            assert r["context"][p["start"]:p["start"] + len(p["answer"])] == p["answer"]
    answers = {r["id"]: p["answer"] for p, r in zip(predictions, rows, strict=True)}
    got = metrics.squad_metrics(answers,
                                {r["id"]: r["answers"]["text"] for r in rows})
    tested = _record(run_dir)["metrics"]
    assert got["exact_match"] == pytest.approx(tested["test/exact_match"], abs=1e-6)
    assert got["f1"] == pytest.approx(tested["test/f1"], abs=1e-6)
    # The same spans as evaluation's post-processing of the plain transformers model's logits.
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from runner.tasks import qa_windows

    model = AutoModelForQuestionAnswering.from_pretrained(run_dir / "model").eval()
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    columns = {k: [r[k] for r in rows] for k in ("id", "question", "context")}
    windows = qa_windows.prepare_eval_features(columns, tok, 96, 16)
    starts, ends = [], []
    for i in range(len(windows["input_ids"])):
        names = ("input_ids", "attention_mask", "token_type_ids")
        with torch.no_grad():
            out = model(**{k: torch.tensor([windows[k][i]]) for k in names if k in windows})
        starts.append(out.start_logits[0].numpy())
        ends.append(out.end_logits[0].numpy())
    meta = [{"example_id": e, "offset_mapping": o} for e, o in
            zip(windows["example_id"], windows["offset_mapping"], strict=True)]
    expected = qa_windows.postprocess_predictions(rows, meta, starts, ends)
    assert [p["answer"] for p in predictions] == [expected[r["id"]] for r in rows]


@pytest.mark.parametrize("head", ["causal_lm", "seq2seq"])
def test_predict_generates_what_transformers_generates(runs, tmp_path, head):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    run_dir = runs(head)
    rows, predictions = _predict(run_dir, head, tmp_path)
    assert ("test/bleu" if head == "seq2seq" else "test/perplexity") in _record(run_dir)["metrics"]
    auto = AutoModelForSeq2SeqLM if head == "seq2seq" else AutoModelForCausalLM
    model = auto.from_pretrained(run_dir / "model").eval()
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    text = rows[0]["translation"]["en"] if head == "seq2seq" else rows[0]["text"]
    enc = tok(text, return_tensors="pt", truncation=True, max_length=64)
    enc.pop("token_type_ids", None)
    ids = model.generate(**enc, max_new_tokens=16, do_sample=False,
                         pad_token_id=tok.pad_token_id)[0]
    if head == "causal_lm":
        ids = ids[enc["input_ids"].shape[1]:]
    assert predictions[0]["generated_text"] == tok.decode(ids, skip_special_tokens=True).strip()
    assert all(isinstance(p["generated_text"], str) for p in predictions)


# ------------------------------------------------------------------ bad input


def _exit_code(main, argv: list[str]) -> int | None:
    try:
        main(argv)
    except SystemExit as stop:
        return stop.code
    return None


def test_both_commands_explain_themselves(capsys):
    for main, words in ((evaluate_main, "--new-run"), (predict_main, "--output")):
        assert _exit_code(main, ["--help"]) == 0
        assert words in capsys.readouterr().out


def test_no_such_run_dir_exits_2_without_a_traceback(tmp_path):
    done = run_cli(str(tmp_path / "nope"), module="runner.evaluate")
    assert done.returncode == 2, done.stderr
    assert "does not exist" in done.stderr and "run.json" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_directory_that_is_not_a_run_or_has_no_model_is_refused(runs, tmp_path, capsys):
    argv = ["--input", "x.jsonl", "--output", str(tmp_path / "o.jsonl")]
    assert _exit_code(predict_main, [str(tmp_path), *argv]) == 2
    assert "is not a run directory (no run.json or config.yaml)" in capsys.readouterr().err
    modelless = tmp_path / "modelless"
    modelless.mkdir()
    for name in ("run.json", "config.yaml"):
        shutil.copy(runs("seqcls") / name, modelless / name)
    assert _exit_code(predict_main, [str(modelless), *argv]) == 2
    err = capsys.readouterr().err
    assert "has no saved model" in err and "trainer.save_model=true" in err


def test_input_missing_its_column_names_it_and_the_fix_works(runs, tmp_path, capsys):
    run_dir = runs("seqcls")
    source = tmp_path / "reviews.jsonl"
    source.write_text('{"comment": "a joy"}\n{"comment": "dull"}\n')
    out = tmp_path / "out.jsonl"
    argv = [str(run_dir), "--input", str(source), "--output", str(out)]
    assert _exit_code(predict_main, argv) == 2
    err = capsys.readouterr().err
    assert "no text column" in err and "comment" in err and "data.columns.text" in err
    assert not out.exists()
    assert _exit_code(predict_main, [*argv, "data.columns.text=comment"]) is None
    assert len(out.read_text().splitlines()) == 2


def test_unreadable_input_and_changed_preprocessing_are_refused(runs, tmp_path, capsys):
    run_dir = runs("seqcls")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": oops}\n')
    argv = [str(run_dir), "--input", str(broken), "--output", str(tmp_path / "o.jsonl")]
    assert _exit_code(predict_main, argv) == 2
    assert f"{broken}, line 2: not valid JSON" in capsys.readouterr().err
    assert _exit_code(predict_main, [*argv[:2], str(tmp_path / "absent.csv"), *argv[3:]]) == 2
    assert "absent.csv does not exist" in capsys.readouterr().err
    assert _exit_code(evaluate_main, [str(run_dir), "data.max_length=32"]) == 2
    assert "data.max_length: cannot change on a trained run" in capsys.readouterr().err


def test_evaluate_without_a_test_split_says_how_to_name_one(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = compose([*fast("seqcls"), "trainer.max_steps=1", "data.max_train_samples=8",
                   "data.max_eval_samples=4", f"trainer.output_dir={out}", "logger=none"])
    run(cfg)
    assert "test/accuracy" not in _record(out)["metrics"]
    assert _exit_code(evaluate_main, [str(out)]) == 2
    assert "no test split" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a joy", "label": "superb"}\n')
    assert _exit_code(evaluate_main, [str(out), f"data.test_file={bad}"]) == 2
    err = capsys.readouterr().err
    assert "row 1: label 'superb' is not one the model was trained on" in err


def test_load_best_without_evaluations_is_a_config_error():
    from runner.config.validate import validate
    from runner.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.load_best: true, but trainer.eval_strategy=no"):
        validate(compose([*fast("seqcls"), "trainer.load_best=true", "trainer.eval_strategy=no"]))

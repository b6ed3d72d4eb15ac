"""Hostile files and config: no code from checkpoints or pickles ever runs."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from conftest import compose, fast, run_cli
from runner.errors import ModelError
from runner.model.build import build_config, build_model


class Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture()
def tiny_bert(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        vocab_size=99))
    return model


def test_pickle_weights_load_only_as_plain_tensors(tmp_path, tiny_bert):
    import torch

    # A legacy checkpoint: config.json + pytorch_model.bin (a pickled state dict)
    tiny_bert.save_pretrained(tmp_path / "bin")
    (tmp_path / "bin" / "model.safetensors").unlink()
    torch.save(tiny_bert.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    cfg = compose(["model=bert", f"model.checkpoint={tmp_path / 'bin'}"])
    loaded = build_model(cfg, build_config(cfg))  # a plain state dict is fine
    assert torch.equal(loaded.classifier.weight, tiny_bert.classifier.weight)

    marker = tmp_path / "code-ran"
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ModelError, match="refusing the weights|cannot load weights"):
        build_model(cfg, build_config(cfg))
    assert not marker.exists()


def test_tampered_checkpoint_is_refused_on_resume(tmp_path):
    out = tmp_path / "run"
    args = [*fast("seqcls", "bert", "trainer.max_epochs=1", "logger=none"),
            f"trainer.output_dir={out}"]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    (checkpoint,) = (out / "checkpoints").glob("step-*")
    marker = tmp_path / "code-ran"
    (checkpoint / "optimizer.bin").write_bytes(pickle.dumps(Payload(marker)))
    # The file list agrees with the tampered file (else resume sets the checkpoint aside as
    # damaged before reading it): what stops the pickle is the loader's own refusal.
    progress = json.loads((checkpoint / "progress.json").read_text())
    progress["files"]["optimizer.bin"] = (checkpoint / "optimizer.bin").stat().st_size
    (checkpoint / "progress.json").write_text(json.dumps(progress))
    info = (out / "run.json").read_text().replace('"FINISHED"', '"RUNNING"')
    (out / "run.json").write_text(info)
    resumed = run_cli(*args, "trainer.resume=auto", cwd=tmp_path)
    assert resumed.returncode == 2
    assert "refusing to resume" in resumed.stderr and "pickled objects" in resumed.stderr
    assert not marker.exists()


def test_config_may_not_name_arbitrary_python_objects(tmp_path):
    marker = tmp_path / "code-ran"
    touch = "+hydra.callbacks.x={_target_: os.system, _args_: ['touch " + str(marker) + "']}"
    for override in ("+hydra.callbacks.evil._target_=pathlib.Path.touch", touch):
        done = run_cli(override, "logger=none", cwd=tmp_path)
        assert done.returncode == 2
        assert "does not allow" in done.stderr
    assert not marker.exists()


def test_paths_are_recorded_absolute(tmp_path):
    (tmp_path / "data").mkdir()
    rows = "text\tlabel\n" + "".join(f"row {i}\t{i % 2}\n" for i in range(12))
    (tmp_path / "data" / "train.tsv").write_text(rows)
    done = subprocess.run(
        [sys.executable, "-m", "runner", *fast("seqcls", "bert", "trainer.max_epochs=1"),
         "data=local", "data.train_file=data/train.tsv", "data.validation_file=data/train.tsv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    absolute = str(tmp_path / "data" / "train.tsv")
    assert f"rows from {absolute}" in done.stdout + done.stderr
    from conftest import mlflow_runs

    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    assert record.data.params["data.train_file"] == absolute

"""Multi-process training on CPU: `accelerate launch --multi_gpu --num_processes 2`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import fast, mlflow_runs

ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]


def launch(tmp_path: Path, processes: int, *overrides: str, cpu_flag: bool = False):
    if processes == 1 and not cpu_flag:
        command = [sys.executable, "-m", "runner"]
    else:
        flags = ["--cpu"] if cpu_flag else ["--multi_gpu"]
        command = [*ACCELERATE, *flags, "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "-m", "runner"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([*command, *overrides], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.slow
def test_two_processes_make_one_run_one_directory_one_set_of_checkpoints(tmp_path):
    done = launch(tmp_path, 2, *fast("seqcls", "bert", "freeze=none"))
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()  # both ranks share it
    steps = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert steps == ["step-00000003", "step-00000006"]  # 48 rows / (8 x 2 ranks) per epoch
    assert json.loads((run_dir / "run.json").read_text())["status"] == "FINISHED"
    client, runs = mlflow_runs(tmp_path / "mlflow.db")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["runner.num_processes"] == "2"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]  # the main process alone
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id,
                                                             "params/total")) == [0]
    assert (run_dir / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_evaluation_across_two_processes_equals_one_process(tmp_path):
    # lr ~ 0 leaves the model at its (seeded) initialisation, so both evaluate the same
    # weights; 13 rows in batches of 4 leave an uneven last batch to shard (the test split
    # too: the same 13 rows, scored after training).
    test_file = tmp_path / "test.jsonl"
    sample = Path(__file__).resolve().parents[1] / "src/runner/data/sample_data/sentiment"
    test_file.write_text("".join((sample / "validation.jsonl").read_text().splitlines(True)[:13]))
    overrides = fast("seqcls", "bert", "freeze=none", "trainer.lr=1e-12",
                     "data.max_eval_samples=13", "trainer.eval_batch_size=4",
                     "trainer.max_epochs=1", "logger=none", f"data.test_file={test_file}")
    metrics = []
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        done = launch(tmp_path, processes, *overrides, f"trainer.output_dir={out}")
        assert done.returncode == 0, done.stderr[-3000:]
        metrics.append(json.loads((out / "run.json").read_text())["metrics"])
    one, two = metrics
    for key in ("eval/loss", "eval/accuracy", "eval/f1_macro", "test/loss", "test/accuracy"):
        assert two[key] == pytest.approx(one[key], rel=1e-6), key
    assert two["test/loss"] == pytest.approx(two["eval/loss"], rel=1e-6)


def test_a_multi_process_request_that_starts_one_process_is_flagged(tmp_path):
    done = launch(tmp_path, 2, *fast("seqcls", "bert", "trainer.max_epochs=1", "logger=none"),
                  cpu_flag=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes were asked for, but this run is alone" in done.stderr


@pytest.mark.parametrize("name,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"),
                                       ("deepspeed_zero2", "DEEPSPEED")])
def test_shipped_accelerate_configs_load_with_accelerate(name, kind):
    """The launch/ configs the README shows are valid accelerate config files (they need
    GPUs to run, so CI only loads them)."""
    from accelerate.commands.config.config_args import ClusterConfig

    from conftest import REPO

    config = ClusterConfig.from_yaml_file(str(REPO / "launch" / f"{name}.yaml"))
    assert config.distributed_type.name == kind
    if name == "fsdp":
        assert config.fsdp_config["fsdp_use_orig_params"] is True  # frozen + trainable mix
    if name == "deepspeed_zero2":
        assert config.deepspeed_config["zero_stage"] == 2

"""Faults inside sweeps, and what killed runs leave behind.

A full or read-only disk under a real `python -m runner -m ...` sweep (a small tmpfs in a
private mount namespace, as in test_faults2.py), an output directory nothing can be written
to, and the staging a killed save leaves in a run directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_faults import run
from test_faults2 import in_own_mounts

from conftest import fast, mlflow_runs

ONE_EPOCH = [o if o != "trainer.max_epochs=2" else "trainer.max_epochs=1" for o in fast("seqcls")]


def test_a_full_disk_in_a_sweep_job_ends_the_sweep_with_runners_message(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    # Room for Hydra's job files and the first job's start, not for its checkpoint, nor
    # (once full) for its run.json, its log lines or the sweep's job record.
    code, output = in_own_mounts(tmp_path, f"mount -t tmpfs -o size=40k tmpfs {disk}",
                                 "-m", *ONE_EPOCH, "trainer.lr=1e-3,1e-2",
                                 f"hydra.sweep.dir={disk / 'out'}")
    assert code == 2, output[-4000:]
    assert "Traceback" not in output and "Logging error" not in output, output[-4000:]
    failed = output.split("FAILED job #0 (", 1)[1].splitlines()[0]
    assert "trainer.lr=0.001" in failed
    assert "DiskError: saving the checkpoint for step 6 failed: the disk is full" in failed
    assert "resume with trainer.resume=auto" in failed  # the fix
    assert "the sweep stopped at a disk error" in output
    assert "job #1" not in output  # it would write to the same full disk
    _, runs = mlflow_runs(tmp_path / "mlflow.db")
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep_parent") == "true"]
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["sweep/failed"] == 1
    assert "trainer.lr=0.001" in parent.data.tags["runner.failed_jobs"]


@pytest.mark.slow
def test_a_full_disk_in_parallel_sweep_jobs_lists_each_with_runners_message(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    # joblib's workers: each job meets the full disk at its own checkpoint and says so.
    code, output = in_own_mounts(tmp_path, f"mount -t tmpfs -o size=100k tmpfs {disk}",
                                 "-m", *ONE_EPOCH, "trainer.lr=1e-3,1e-2",
                                 "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                 f"hydra.sweep.dir={disk / 'out'}")
    assert code != 0, output[-4000:]
    assert "Traceback" not in output and "Logging error" not in output, output[-4000:]
    assert "sweep: 2 jobs, 2 failed" in output
    for num, lr in ((0, "0.001"), (1, "0.01")):
        failed = output.split(f"FAILED job #{num} (", 1)[1].splitlines()[0]
        assert f"trainer.lr={lr}" in failed and "failed: the disk is full" in failed
        assert "DiskError: saving the " in failed
    _, runs = mlflow_runs(tmp_path / "mlflow.db")
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep_parent") == "true"]
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["sweep/failed"] == 2


def test_a_read_only_sweep_directory_is_named_before_the_parent_run_opens(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    setup = f"mount -t tmpfs tmpfs {disk}; mkdir {disk}/out; mount -o remount,ro {disk}"
    code, output = in_own_mounts(tmp_path, setup, "-m", *ONE_EPOCH, "trainer.lr=1e-3,1e-2",
                                 f"hydra.sweep.dir={disk / 'out' / 'sweep'}")
    assert code == 2, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert (f"error: writing the sweep directory {disk / 'out' / 'sweep'} failed: the "
            "filesystem is read-only") in output
    assert "point hydra.sweep.dir at another disk" in output
    _, runs = mlflow_runs(tmp_path / "mlflow.db")
    assert runs == []  # no parent run left RUNNING


def test_an_output_dir_nothing_can_be_written_to_is_refused_before_any_compute(tmp_path):
    done = run(tmp_path, *ONE_EPOCH, "trainer.output_dir=/proc/runner-out")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "trainer.output_dir: '/proc/runner-out' cannot be written: creating a folder in " \
           "/proc fails" in done.stderr
    assert "tokenized features" not in done.stdout  # refused before the data was read
    assert not Path("/proc/runner-out").exists()


def test_an_output_dir_on_a_read_only_mount_is_refused_at_validation(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    setup = f"mount -t tmpfs tmpfs {disk}; mkdir {disk}/out; mount -o remount,ro {disk}"
    code, output = in_own_mounts(tmp_path, setup, *ONE_EPOCH,
                                 f"trainer.output_dir={disk / 'out' / 'run'}")
    assert code == 2, output[-4000:]
    assert "Traceback" not in output
    assert (f"trainer.output_dir: '{disk / 'out' / 'run'}' cannot be written: creating a folder "
            f"in {disk / 'out'} fails (Read-only file system)") in output
    assert not (tmp_path / "mlflow.db").exists()  # nothing recorded


def dead_pid() -> int:
    """The process id of a real process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_killed_runs_staging_is_swept_when_a_run_starts_and_a_live_ones_is_kept(tmp_path):
    out = tmp_path / "run"
    # What SIGKILL during saves leaves: the final model's staging folder, atomic_write's
    # temporary file and a checkpoint's staging folder, each half written.
    killed = dead_pid()
    (out / f".model-{killed}.tmp").mkdir(parents=True)
    (out / f".model-{killed}.tmp" / "model.safetensors").write_bytes(b"half a model")
    (out / f".run.json.{killed}.tmp").write_text('{"status": "RUN')
    (out / "checkpoints" / ".staging-00000006").mkdir(parents=True)
    (out / "checkpoints" / ".staging-00000006" / "optimizer.bin").write_bytes(b"half")
    # A staging folder of a process that still runs (another job saving): never removed.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (out / f".model-{live.pid}.tmp").mkdir()
        done = run(tmp_path, *ONE_EPOCH, "trainer.save_model=false", "logger=none",
                   f"trainer.output_dir={out}")
        assert done.returncode == 0, done.stderr[-3000:]
        assert (out / f".model-{live.pid}.tmp").is_dir()
    finally:
        live.kill()
        live.wait()
    left = sorted(p.name for p in [*out.iterdir(), *(out / "checkpoints").iterdir()])
    assert not [n for n in left if str(killed) in n or n.startswith(".staging-")], left
    assert f"removed {out / 'checkpoints' / '.staging-00000006'}" in done.stdout
    assert json.loads((out / "run.json").read_text())["status"] == "FINISHED"
    assert (out / "checkpoints" / "step-00000006" / "progress.json").is_file()


def test_checkpoint_staging_is_kept_while_run_json_names_a_live_run_there(tmp_path):
    from runner.train.run_file import sweep_leftovers

    staged = tmp_path / "checkpoints" / ".staging-00000004"
    staged.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (tmp_path / "run.json").write_text(json.dumps({"status": "RUNNING", "pid": live.pid}))
        sweep_leftovers(tmp_path)
        assert staged.is_dir()  # it may be that run's checkpoint being written
    finally:
        live.kill()
        live.wait()
    sweep_leftovers(tmp_path)  # the run is gone now (killed): its staging goes
    assert not staged.exists()


def test_a_model_error_in_sweep_jobs_is_listed_and_the_sweep_goes_on(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, "-m", "runner", "-m", "model=bert",
                           f"model.checkpoint={empty}", "trainer.lr=1e-3,1e-2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output[-4000:]
    assert "sweep: 2 jobs, 2 failed" in output  # a bad input is not a full disk: job 1 ran
    for lr in ("0.001", "0.01"):
        assert (f"trainer.lr={lr}): ModelError: model.checkpoint='{empty}' has no config.json"
                in output)
    _, runs = mlflow_runs(tmp_path / "mlflow.db")
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep_parent") == "true"]
    assert parent.info.status == "FAILED" and parent.data.metrics["sweep/failed"] == 2

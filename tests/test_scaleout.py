"""Sweeps that scale out: parallel joblib workers on their own cores and GPUs, and
the preemption path of cluster jobs (a real signal to a real process, and submitit's local
executor requeueing a real job)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from test_tracking import FAST, interruptible, ok, only_run, stop, wait_for, workdir

from conftest import mlflow_runs


def job_records(work) -> list[dict]:
    (sweep,) = (work.path / "outputs" / "sweeps").iterdir()
    return [json.loads(p.read_text()) for p in sorted((sweep / "jobs").glob("*.json"))]


def test_joblib_workers_each_get_their_own_cores_and_gpu(tmp_path_factory):
    work = workdir(tmp_path_factory, "joblib2")
    # Two devices to share out (on a machine without GPUs they exist in name only, and
    # each job trains on the CPU): each parallel job gets one as CUDA_VISIBLE_DEVICES.
    ok(work.run("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                "head.num_labels=2,3", *FAST, "logger=none",
                env=work.env(CUDA_VISIBLE_DEVICES="3,5")))
    records = job_records(work)
    assert [r["status"] for r in records] == ["FINISHED", "FINISHED"]
    cores = [set(r["cores"]) for r in records]
    assert all(cores) and not cores[0] & cores[1], cores
    assert sorted(r["gpu"] for r in records) == ["3", "5"]


def test_sigusr1_preempts_and_the_restarted_run_resumes_into_the_same_run(tmp_path_factory):
    work = workdir(tmp_path_factory, "preempt")
    args = [*interruptible(epochs=6), f"trainer.output_dir={work.path / 'job'}"]
    proc = work.start(*args)
    try:
        wait_for(lambda: list((work.path / "job").glob("checkpoints/step-*/progress.json")),
                 "a checkpoint", proc, describe=work.output)
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=120) == 75, work.output()  # EX_TEMPFAIL: to be requeued
    finally:
        stop(proc)
    info = json.loads((work.path / "job" / "run.json").read_text())
    assert info["status"] == "PREEMPTED"
    client, run = only_run(work.db)
    assert run.info.status == "KILLED" and run.data.tags["runner.preempted"] == "true"

    rerun = ok(work.run(*args))  # the same command, as a requeued job runs it
    assert "this run was preempted: resuming it" in rerun.stdout + rerun.stderr
    client, again = only_run(work.db)
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert json.loads((work.path / "job" / "run.json").read_text())["status"] == "FINISHED"


@pytest.mark.slow
def test_submitit_requeues_a_preempted_job_which_resumes_into_the_same_run(tmp_path_factory):
    work = workdir(tmp_path_factory, "submitit")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-m", "hydra/launcher=submitit_local",
         "hydra.launcher.timeout_min=20", *interruptible(epochs=8)],
        cwd=work.path, env=work.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        def job_with_checkpoint():
            for run_file in work.path.glob("outputs/sweeps/*/0/run.json"):
                if list(run_file.parent.glob("checkpoints/step-*/progress.json")):
                    return json.loads(run_file.read_text())
            return None

        job = wait_for(job_with_checkpoint, "the job's first checkpoint", proc)
        os.kill(job["pid"], signal.SIGUSR2)  # submitit's preemption / time-limit signal
        output, _ = proc.communicate(timeout=600)
    finally:
        stop(proc)
    assert proc.returncode == 0, output[-5000:]
    client, runs = mlflow_runs(work.db)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 1, [(r.info.run_name, r.info.status) for r in runs]
    (child,) = children
    assert child.info.status == "FINISHED"
    assert child.data.tags.get("runner.resumed") == "true"  # the requeued job continued it
    assert child.data.tags.get("runner.pid") != str(job["pid"])

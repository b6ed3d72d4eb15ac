"""Many processes at once: one fresh sqlite store, sweeps started in the same second."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import fast, mlflow_runs


@pytest.mark.slow
def test_eight_runs_on_one_fresh_sqlite_store_all_recorded(tmp_path):
    args = [sys.executable, "-m", "runner", *fast("seqcls", "bert", "trainer.max_epochs=1")]
    procs = [subprocess.Popen([*args, f"logger.run_name=job{i}"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(8)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[-1500:] for o in outputs]
    assert not [o for o in outputs if "database is locked" in o]
    _, runs = mlflow_runs(tmp_path / "mlflow.db")
    assert sorted(r.info.run_name for r in runs) == [f"job{i}" for i in range(8)]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.metrics.get("objective") is not None for r in runs)


def test_two_sweeps_started_together_get_their_own_directories(tmp_path):
    args = [sys.executable, "-m", "runner", "-m", "head.num_labels=2",
            *fast("seqcls", "bert", "trainer.max_epochs=1", "logger=none")]
    procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-1500:] for e in errors]
    sweeps = list((tmp_path / "outputs" / "sweeps").iterdir())
    assert len(sweeps) == 2
    assert all((s / "0" / "run.json").is_file() for s in sweeps)

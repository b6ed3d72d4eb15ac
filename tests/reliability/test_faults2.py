"""Faults beyond training itself: signals at every stage of a run, a half-created store,
damaged checkpoints, unreachable or unusable tracking stores, full disks.

Signals go to real `python -m runner` processes; the full disk is a real 300 KiB tmpfs and
the read-only store a real read-only mount, both in a private mount namespace (`unshare`),
which needs no root. The rest runs in this process, as tests/reliability/test_faults.py does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_faults import run

from conftest import fast, mlflow_runs

TIMEOUT = 180


def write_rows(path: Path, n: int) -> Path:
    """A sentiment file of n short rows (two classes)."""
    words = ("good", "bad", "fine", "awful", "great", "dull")
    path.write_text("".join(json.dumps({"text": f"{words[i % 6]} film {i}", "label": i % 2})
                            + "\n" for i in range(n)))
    return path


def local_data(tmp_path: Path, train: int, validation: int) -> list[str]:
    return ["data=local", f"data.train_file={write_rows(tmp_path / 'train.jsonl', train)}",
            f"data.validation_file={write_rows(tmp_path / 'validation.jsonl', validation)}",
]


class Process:
    """`python -m runner args` started from `cwd`, its output going to files."""

    def __init__(self, cwd: Path, *args: str):
        self.cwd = cwd
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        with open(cwd / "out.txt", "w") as out, open(cwd / "err.txt", "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=cwd,
                                         env=env, stdout=out, stderr=err)

    def output(self) -> str:
        return (self.cwd / "out.txt").read_text() + (self.cwd / "err.txt").read_text()

    def wait_for(self, predicate, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not predicate():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"the run ended or timed out before {what}:\n{self.output()[-4000:]}")
            time.sleep(0.05)

    def signal(self, signum: int) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.proc.kill()


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


# ------------------------------------------------------------------------------- signals


def test_sigint_during_the_final_evaluation_saves_a_checkpoint_then_resume_clears_the_error(
        tmp_path):
    out = tmp_path / "out"
    args = [*fast("seqcls", "bert", "freeze=none", "trainer.max_epochs=1",
                  "trainer.eval_strategy=no"), *local_data(tmp_path, 16, 4000),
            "data.max_eval_samples=null", f"trainer.output_dir={out}"]
    proc = Process(tmp_path, *args)
    proc.wait_for(lambda: "evaluating" in proc.output(), "the final evaluation")
    assert proc.signal(signal.SIGINT) == 130, proc.output()[-4000:]
    output = proc.output()
    assert "Traceback" not in output
    assert "stopped by SIGINT at step 2; checkpoint saved" in output
    assert (out / "checkpoints" / "step-00000002" / "progress.json").is_file()
    assert run_json(out)["status"] == "KILLED"
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    assert record.info.status == "KILLED"

    # The resumed run finishes (on a shorter validation file: same settings, less to
    # evaluate), and run.json no longer carries the interruption's error.
    write_rows(tmp_path / "validation.jsonl", 64)
    done = run(tmp_path, *args, "trainer.resume=auto")
    assert done.returncode == 0, done.stderr[-3000:]
    assert run_json(out)["status"] == "FINISHED"
    assert "error" not in run_json(out)


def test_sigterm_during_tokenization_stops_the_run(tmp_path):
    out = tmp_path / "out"
    proc = Process(tmp_path, "-v", *fast("seqcls"), *local_data(tmp_path, 60000, 16),
                   "data.max_train_samples=null", f"trainer.output_dir={out}")
    proc.wait_for(lambda: "tokenizing" in proc.output(), "tokenization")
    started = time.monotonic()
    assert proc.signal(signal.SIGTERM) == 130, proc.output()[-4000:]
    assert time.monotonic() - started < 20
    assert "stopped by SIGTERM while tokenizing the data" in proc.output()
    assert "Exception ignored" not in proc.output()
    assert run_json(out)["status"] == "KILLED"


def test_sigterm_while_the_store_is_created_leaves_a_usable_directory(tmp_path):
    from runner.track.store import client_for

    out = tmp_path / "out"
    proc = Process(tmp_path, *fast("seqcls"), f"trainer.output_dir={out}")
    # MLflow migrates a new store for a second or more: stop the run in the middle of it.
    proc.wait_for(lambda: any(tmp_path.glob("*mlflow.db*.creating")) or
                  (tmp_path / "mlflow.db").exists(), "the store's creation")
    assert proc.signal(signal.SIGTERM) == 130, proc.output()[-4000:]
    assert "stopped by SIGTERM before training started" in proc.output()
    assert run_json(out)["status"] == "KILLED"
    assert not list(tmp_path.glob(".mlflow.db.*.creating"))
    # The next run's store opens and records.
    client = client_for(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_run(client.create_experiment("next"))


def half_created_store(db: Path) -> None:
    """A store as a process killed mid-migration leaves it: MLflow's first tables, and
    the schema migrated only half way."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
    from sqlalchemy import create_engine

    url = f"sqlite:///{db}"
    InitialBase.metadata.create_all(create_engine(url))
    config = _get_alembic_config(url)
    revisions = list(ScriptDirectory.from_config(config).walk_revisions())
    command.upgrade(config, revisions[len(revisions) // 2].revision)


def test_a_half_created_store_is_set_aside_and_created_anew(tmp_path):
    half_created_store(tmp_path / "mlflow.db")
    done = run(tmp_path, *fast("seqcls"), "trainer.max_epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "was left half-created" in done.stdout
    assert list(tmp_path.glob("mlflow.db.half-created-*"))
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    assert record.info.status == "FINISHED"


# --------------------------------------------------------------------------- checkpoints


def test_resume_falls_back_from_a_damaged_checkpoint(tmp_path):
    args = [*fast("seqcls", "bert", "freeze=none", "trainer.max_epochs=1",
                  "trainer.save_every=2")]
    first = run(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoints = tmp_path / "outputs" / "run" / "checkpoints"
    newest, previous = sorted(checkpoints.glob("step-*"))[::-1][:2]
    weights = newest / "model.safetensors"
    weights_before = weights.read_bytes()
    weights.write_bytes(weights_before[:1000])  # truncated, as by a full disk
    done = run(tmp_path, *args, "trainer.resume=auto")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (f"checkpoint {newest} is damaged (model.safetensors has 1000 bytes, "
            f"{len(weights_before)} were written): falling back to {previous}") in done.stdout
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")  # the same run, resumed
    assert record.data.tags["runner.resumed"] == "true"


def test_a_truncated_local_checkpoint_is_refused_before_anything_is_recorded(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    model_dir = tmp_path / "model"
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37)
    BertForSequenceClassification(config).save_pretrained(model_dir)
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    done = run(tmp_path, "model=bert", "head=seqcls", f"model.checkpoint={model_dir}")
    assert done.returncode == 2
    assert "model.safetensors cannot be read" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists() or not mlflow_runs(tmp_path / "mlflow.db")[1]


# ------------------------------------------------------------------------ tracking store


def test_an_unreachable_tracking_server_fails_quickly_naming_it(tmp_path, monkeypatch):
    for key in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.delenv(key, raising=False)  # runner sets them; put them back after
    started = time.monotonic()
    done = run(tmp_path, *fast("seqcls"), "logger.tracking_uri=http://127.0.0.1:1")
    assert done.returncode == 2, done.stderr[-3000:]
    assert time.monotonic() - started < 60
    assert "the MLflow store http://127.0.0.1:1 cannot be reached" in done.stderr
    assert "logger=none" in done.stderr


@pytest.mark.parametrize(("store", "expected"), [
    ("corrupt", "is not a readable SQLite database"),
    ("scheme", "is not a tracking store MLflow can use"),
    ("under-a-file", "cannot be opened"),
])
def test_unusable_stores_are_named_with_a_fix(tmp_path, store, expected):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "mlflow.db").write_bytes(b"this is no sqlite file" * 100)
    uri = {"corrupt": f"sqlite:///{tmp_path / 'mlflow.db'}", "scheme": "nosuch://host/x",
           "under-a-file": f"sqlite:///{tmp_path / 'afile' / 'mlflow.db'}"}[store]
    done = run(tmp_path, *fast("seqcls"), f"logger.tracking_uri={uri}")
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"the MLflow store {uri} {expected}" in done.stderr
    assert "fix:" in done.stderr
    assert not list(tmp_path.glob("outputs/run/checkpoints"))


def test_an_empty_experiment_name_is_a_config_error(tmp_path):
    done = run(tmp_path, *fast("seqcls"), "logger.experiment=''")
    assert done.returncode == 2
    assert "logger.experiment: is empty" in done.stderr


# ------------------------------------------------------------------ real small filesystems


def in_own_mounts(tmp_path: Path, setup: str, *args: str) -> tuple[int, str]:
    """Run `python -m runner args` in a private mount namespace after the shell `setup`
    (mounts); returns its exit code and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    runner = " ".join(f"'{a}'" for a in [sys.executable, "-m", "runner", *args])
    script = f"set -e; {setup}; set +e; {runner}; echo \"exit=$?\"; ls -aR {tmp_path}/disk/out"
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert "exit=" in done.stdout, done.stderr[-3000:]
    code = int(done.stdout.split("exit=")[1].split()[0])
    return code, done.stdout + done.stderr


@pytest.mark.parametrize(("size", "where"), [("100k", "saving the checkpoint for step 6"),
                                             ("300k", "saving the final model")])
def test_a_full_disk_is_a_clear_error_and_leaves_no_staging(tmp_path, size, where):
    disk = tmp_path / "disk"
    disk.mkdir()
    # A staging folder of a dead process too: the run sweeps it away as it starts.
    setup = f"mount -t tmpfs -o size={size} tmpfs {disk}; mkdir -p {disk}/out/.model-999999999.tmp"
    code, output = in_own_mounts(tmp_path, setup, *fast("seqcls"), "trainer.max_epochs=1",
                                 f"trainer.output_dir={disk / 'out'}")
    assert code == 2, output[-4000:]
    assert f"{where}" in output and "failed: the disk is full" in output
    assert "Traceback" not in output
    listing = output.split("exit=")[1]
    assert ".staging-" not in listing and ".model-" not in listing.replace(".model-999999999", "")
    if "final" in where:  # the dead process's staging folder was swept too
        assert ".model-999999999" not in listing
    _, (record,) = mlflow_runs(tmp_path / "mlflow.db")
    assert record.info.status == "FAILED"


def test_a_read_only_store_is_named_with_a_fix(tmp_path):
    from runner.track.store import client_for

    client_for(f"sqlite:///{tmp_path / 'mlflow.db'}")
    disk = tmp_path / "disk"
    disk.mkdir()
    setup = (f"mount -t tmpfs tmpfs {disk}; mkdir {disk}/out; cp {tmp_path}/mlflow.db {disk}/; "
             f"mount -o remount,ro {disk}")
    code, output = in_own_mounts(tmp_path, setup, *fast("seqcls"),
                                 f"logger.tracking_uri=sqlite:///{disk}/mlflow.db",
                                 f"trainer.output_dir={tmp_path / 'out'}")
    assert code == 2, output[-4000:]
    assert f"the MLflow store sqlite:///{disk}/mlflow.db cannot be written" in output
    assert "Traceback" not in output


# ------------------------------------------------------- the signal watch, in this process


def test_a_second_signal_in_the_training_loop_stops_at_once():
    from runner.errors import Interrupted
    from runner.train.signals import stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as (received, _):
        os.kill(os.getpid(), signal.SIGTERM)  # the first: a flag, the step goes on
        assert received == [signal.SIGTERM]
        with pytest.raises(Interrupted, match="stopped at once by a second signal"):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == before  # put back as it was


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_whose_exception_a_destructor_swallowed_still_stops_the_run():
    from runner.errors import Interrupted
    from runner.train.signals import phase, watching

    class SignalledWhileCollected:
        def __del__(self):  # Python prints "Exception ignored in ... __del__" and goes on
            os.kill(os.getpid(), signal.SIGTERM)

    with watching():
        phase("while tokenizing the data")
        SignalledWhileCollected()  # collected at once: the handler raises inside __del__
        with pytest.raises(Interrupted, match="stopped by SIGTERM while tokenizing the data"):
            phase("before training started")  # the next stage boundary sees the signal

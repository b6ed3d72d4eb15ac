"""A run whose MLflow tracking server goes away mid-training keeps training.

A real `mlflow server` on 127.0.0.1 (sqlite store in tmp_path) is SIGKILLed once the run has
logged its first training metric. The runner process is held with SIGSTOP around each change
to the server, so every step of the story happens while it is still training, however
slow the machine: the kill, the warning, the restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_tracking import free_port, healthy, mlflow_server_process, wait_for

from conftest import fast

TIMEOUT = 120  # seconds for a server to start or a run to end
# 400 samples in batches of 8 over 2 epochs: 100 steps, each logged.
STEPS = 100
RUN = [*fast("seqcls"), "data.max_train_samples=400", "freeze=none",
       "trainer.save_every=1000"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, **extra}


class Server:
    """`mlflow server` on one port and one store, which a test can kill and start again."""

    def __init__(self, base: Path):
        self.base = base
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        with open(self.base / "server.log", "a") as log:  # a restart appends
            self.proc = mlflow_server_process(port, f"sqlite:///{self.base}/server.db",
                                              self.base, log, artifacts=self.base / "artifacts")
        wait_for(lambda: healthy(self.url), f"mlflow server at {self.url}", self.proc,
                 timeout=TIMEOUT, describe=lambda: (self.base / "server.log").read_text())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended by itself
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        # the group's children (uvicorn) may outlive the parent for a moment
        wait_for(lambda: not healthy(self.url), "the server to stop answering", timeout=TIMEOUT)


@pytest.fixture
def server(tmp_path):
    base = tmp_path / "server"
    base.mkdir()
    server = Server(base)
    server.start()
    yield server
    server.kill()


class Run:
    """`python -m runner` in `cwd`, its output in files."""

    def __init__(self, cwd: Path, url: str, *extra: str):
        self.cwd = cwd
        env = clean_env(RUNNER_TRACKING_RETRY_S="0.5", HF_HUB_OFFLINE="1")
        with open(cwd / "out.txt", "w") as out, open(cwd / "err.txt", "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runner", *RUN, f"logger.tracking_uri={url}", *extra],
                cwd=cwd, env=env, stdout=out, stderr=err)

    def output(self) -> str:
        """stdout (where runner's log lines go) and stderr (the error)."""
        return (self.cwd / "out.txt").read_text() + (self.cwd / "err.txt").read_text()

    def stderr(self) -> str:
        return (self.cwd / "err.txt").read_text()

    def wait_for(self, predicate, what: str):
        return wait_for(predicate, what, self.proc, timeout=TIMEOUT, describe=self.output)

    def end(self) -> int:
        try:
            return self.proc.wait(timeout=TIMEOUT)
        finally:
            self.proc.kill()

    def paused(self):
        """SIGSTOP now; SIGCONT when the returned callable is called."""
        self.proc.send_signal(signal.SIGSTOP)
        return lambda: self.proc.send_signal(signal.SIGCONT)


def the_run(url: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("runner")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return client, (runs[0] if runs else None)


def first_loss_logged(url: str) -> bool:
    try:
        _, run = the_run(url)
    except Exception:  # noqa: BLE001  (the store is still being set up)
        return False
    return run is not None and "train/loss" in run.data.metrics


def lose_server(run: Run, server: Server) -> None:
    """Kill the server once the run has logged a metric; the run sees it at its next step."""
    run.wait_for(lambda: first_loss_logged(server.url), "the first train/loss on the server")
    resume = run.paused()
    server.kill()
    resume()
    run.wait_for(lambda: "did not answer at step" in run.output(), "the warning")


def assert_complete(url: str, keys: tuple[str, ...] | None = None) -> None:
    """FINISHED, every training step's loss, each value of `keys` (all runner's metrics
    by default) once: nothing lost, nothing sent twice."""
    client, run = the_run(url)
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, STEPS + 1))
    for key in keys or run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)) or key.startswith("system/"), (key, steps)


def test_server_restarted_mid_run_gets_every_metric(server, tmp_path):
    run = Run(tmp_path, server.url)
    lose_server(run, server)
    resume = run.paused()
    server.start()  # same port, same store
    resume()
    assert run.end() == 0, run.output()[-4000:]
    err = run.output()
    assert err.count("did not answer at step") == 1  # one warning, not one per step
    assert "MLflow server back at step" in err and "pending metric values" in err
    assert_complete(server.url)
    assert not list(tmp_path.glob("outputs/**/unsent_metrics.jsonl"))


def test_server_left_down_keeps_the_values_and_a_resume_sends_them(server, tmp_path):
    run = Run(tmp_path, server.url)
    lose_server(run, server)
    code = run.end()
    err = run.stderr()
    assert code == 2, err[-4000:]
    assert "Traceback" not in err
    assert "training finished and the model is saved in" in err
    assert "could not be recorded" in err
    (unsent,) = tmp_path.glob("outputs/**/unsent_metrics.jsonl")
    assert str(unsent) in err
    run_dir = unsent.parent
    assert (run_dir / "model" / "model.safetensors").is_file()
    values = [json.loads(line) for line in unsent.read_text().splitlines()]
    losses = [v["step"] for v in values if v.get("key") == "train/loss"]
    assert losses == sorted(losses) and losses[-1] == STEPS  # in order, up to the end
    assert all(isinstance(v["timestamp"], int) for v in values if "key" in v)

    # The server is back: the same command with trainer.resume=auto sends them first.
    server.start()
    again = Run(tmp_path, server.url, "trainer.resume=auto")
    assert again.end() == 0, again.output()[-4000:]
    assert not unsent.exists()
    assert "metric values an earlier attempt could not send" in again.output()
    # (a resumed run evaluates its last checkpoint again: eval/* at the last step twice)
    assert_complete(server.url, keys=("train/loss", "train/lr", "train/epoch"))


def test_outbox_waits_out_its_cool_down_and_keeps_order(tmp_path, monkeypatch):
    """In process, against a real closed port and a real sqlite store: one attempt per
    cool-down, the values sent later in order with their own steps and timestamps, and a
    value the store refuses (a param changed) raises instead of being kept."""
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from runner.track.buffer import Outbox

    monkeypatch.setenv("RUNNER_TRACKING_RETRY_S", "3600")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    store = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run_id = store.create_run(store.create_experiment("x")).info.run_id
    closed = f"http://127.0.0.1:{free_port()}"
    outbox = Outbox(MlflowClient(closed), run_id, closed)

    outbox.metrics_at({"train/loss": 1.0}, 1)
    tried = outbox.last_try
    assert outbox.down and tried > 0
    outbox.metrics_at({"train/loss": 0.5}, 2)  # within the cool-down: not tried again
    assert outbox.last_try == tried and [m.step for m in outbox.metrics] == [1, 2]
    stamps = [m.timestamp for m in outbox.metrics]

    outbox.client, outbox.uri = store, store.tracking_uri  # a store that answers
    assert outbox.send(now=True) and not outbox.down and outbox.pending == 0
    history = sorted(store.get_metric_history(run_id, "train/loss"), key=lambda m: m.step)
    assert [(m.step, m.value, m.timestamp) for m in history] == [(1, 1.0, stamps[0]),
                                                                 (2, 0.5, stamps[1])]
    outbox.add_params([Param("trainer.lr", "0.1")])
    with pytest.raises(MlflowException):
        outbox.add_params([Param("trainer.lr", "0.2")])  # refused, not a lost server

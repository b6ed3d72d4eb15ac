"""MLflow tracking against real stores: runs started as a user starts them, checked with
MlflowClient.

Every run is a `python -m runner` subprocess started in its own temporary directory (so the
default store is `sqlite:///<that dir>/mlflow.db`), with a clean environment: no MLFLOW_*
variable leaks in from the shell running the tests. Runs that several tests look at are made
once per module. HTTP tracking uses a real `mlflow server` on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import REPO, fast, mlflow_runs

RUN_TIMEOUT = 300  # seconds for one runner process (a few seconds of training each)
WAIT_TIMEOUT = 180  # seconds to wait for a checkpoint, a run id, a server

# 48 training samples, batches of 8, 2 epochs (conftest.fast).
STEPS_PER_EPOCH = 6
FAST = fast("seqcls")


# ------------------------------------------------------------------------------ helpers


def override(base: list[str], *extra: str) -> list[str]:
    """`base` with `extra` appended, dropping base entries for the same keys."""
    keys = {e.split("=", 1)[0].lstrip("+~") for e in extra}
    return [o for o in base if o.split("=", 1)[0].lstrip("+~") not in keys] + list(extra)


def interruptible(epochs: int) -> list[str]:
    """A run that is still training well after its first checkpoint (step 2): the whole
    model trains (a frozen body would let training replay cached features, in a blink)."""
    return override(FAST, "freeze=none", f"trainer.max_epochs={epochs}", "trainer.save_every=2")


def clean_env(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(RUNNER_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1", **extra)
    return env


@dataclass
class Workdir:
    """A directory a user runs the runner from, with its own feature/tokenizer cache."""

    path: Path
    cache: Path

    @property
    def db(self) -> Path:
        return self.path / "mlflow.db"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(self.cache, **extra)

    def run(self, *args: str, module: str = "runner", env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *args], cwd=self.path,
                              env=env or self.env(), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT)

    def start(self, *args: str) -> subprocess.Popen:
        """Start a run in the background (output to files: tqdm writes a lot)."""
        with open(self.path / "stdout.txt", "w") as out, open(self.path / "stderr.txt", "w") as err:
            return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=self.path,
                                    env=self.env(), stdout=out, stderr=err)

    def output(self) -> str:
        return "".join((self.path / f).read_text() for f in ("stdout.txt", "stderr.txt")
                       if (self.path / f).is_file())


def workdir(factory, name: str) -> Workdir:
    base = factory.mktemp(name)
    (base / "work").mkdir()
    return Workdir(base / "work", base / "cache")


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-5000:]
    return result


def wait_for(predicate, what: str, proc: subprocess.Popen | None = None,
             timeout: float = WAIT_TIMEOUT, describe=lambda: ""):
    """Poll `predicate` until it returns something truthy; fail (never hang) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            value = predicate()
            if value:
                return value
            pytest.fail(f"the process ended (exit code {proc.returncode}) before {what}:\n"
                        f"{describe()[-5000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{describe()[-5000:]}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def checkpoints(work: Workdir) -> list[Path]:
    return sorted(work.path.glob("outputs/**/checkpoints/step-*/progress.json"))


def run_files(work: Workdir) -> list[Path]:
    return sorted(work.path.glob("outputs/**/run.json"))


def artifact_text(client, run_id: str, path: str, tmp: Path) -> str:
    dst = tmp / f"artifacts-{run_id}-{path.replace('/', '_')}"
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst))).read_text()


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for info in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return found


def steps(client, run_id: str, key: str) -> list[int]:
    history = client.get_metric_history(run_id, key)
    return [m.step for m in sorted(history, key=lambda m: (m.step, m.timestamp))]


def only_run(db: Path):
    client, runs = mlflow_runs(db)
    assert len(runs) == 1, [(r.info.run_name, r.info.status) for r in runs]
    return client, runs[0]


def flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def bystander_run(db: Path) -> str:
    """A finished run made directly with MlflowClient, for MLFLOW_RUN_ID to point at."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp_id = client.create_experiment("runner", artifact_location=str(db.parent / "mlruns"))
    run = client.create_run(exp_id, run_name="bystander")
    client.log_param(run.info.run_id, "who", "bystander")
    client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id


def assert_untouched_bystander(db: Path, run_id: str) -> None:
    client, runs = mlflow_runs(db)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"who": "bystander"}
    assert run.data.metrics == {}
    assert not [k for k in run.data.tags if k.startswith("runner.")], run.data.tags
    assert artifact_paths(client, run_id) == set()


# ----------------------------------------------------------------------- 1. a single run


SINGLE = [*FAST, "freeze=none", "head.num_labels=2"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    work = workdir(tmp_path_factory, "single")
    result = ok(work.run(*SINGLE))
    client, run = only_run(work.db)
    return work, result, client, run


def test_single_run_finishes(single):
    work, _, _, run = single
    assert run.info.status == "FINISHED"
    (run_file,) = run_files(work)
    assert json.loads(run_file.read_text())["mlflow_run_id"] == run.info.run_id


def test_single_run_params_are_the_flattened_resolved_config(single, tmp_path):
    _, _, client, run = single
    params = run.data.params
    assert params["model.checkpoint"] == "bert-base-uncased"
    assert params["model.init"] == "scratch"
    assert params["model.family"] == "bert"
    assert params["head.num_labels"] == "2"
    assert params["freeze.strategy"] == "none"
    assert params["trainer.lr"] != "None"
    assert float(params["trainer.lr"]) > 0  # resolved from the freeze strategy
    assert params["model.config_overrides.hidden_size"] == "32"
    resolved = yaml.safe_load(artifact_text(client, run.info.run_id, "config/resolved.yaml",
                                            tmp_path))
    expected = {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v)
                for k, v in flatten(resolved).items()}
    assert params == expected
    assert float(params["trainer.lr"]) == resolved["trainer"]["lr"]


def test_single_run_metrics(single):
    _, _, client, run = single
    run_id, metrics = run.info.run_id, run.data.metrics
    for key in ("params/total", "params/trainable", "params/frozen",
                "params/trainable_fraction"):
        assert steps(client, run_id, key) == [0], key
    assert metrics["params/total"] == metrics["params/trainable"] + metrics["params/frozen"]
    assert metrics["params/frozen"] == 0  # freeze=none
    assert metrics["params/trainable_fraction"] == pytest.approx(1.0)
    total_steps = 2 * STEPS_PER_EPOCH
    for key in ("train/loss", "train/lr", "train/samples_per_second"):
        assert steps(client, run_id, key) == list(range(1, total_steps + 1)), key
    losses = [m.value for m in client.get_metric_history(run_id, "train/loss")]
    assert all(0 < v < 10 for v in losses)
    assert all(m.value > 0 for m in client.get_metric_history(run_id, "train/samples_per_second"))
    for key in ("eval/loss", "eval/accuracy", "eval/f1_macro"):
        assert key in metrics, key
        assert max(steps(client, run_id, key)) == total_steps
    objective = run.data.tags["runner.objective"]
    assert objective == "eval/accuracy"
    assert metrics["objective"] == metrics[objective]


def test_single_run_param_counts_match_inspect(single):
    work, _, _, run = single
    # The run sizes a scratch model's embeddings to the tokenizer it trains on the data;
    # inspect builds no tokenizer, so it is given that vocabulary size.
    (config_file,) = work.path.glob("outputs/runs/*/model/config.json")
    vocab = json.loads(config_file.read_text())["vocab_size"]
    args = override(SINGLE, f"+model.config_overrides.vocab_size={vocab}")
    result = ok(work.run(*args, "inspect.output=json", module="runner.inspect"))
    counts = json.loads(result.stdout)["params"]
    metrics = run.data.metrics
    assert metrics["params/total"] == counts["total"]
    assert metrics["params/trainable"] == counts["trainable"]
    assert metrics["params/frozen"] == counts["frozen"]
    assert metrics["params/trainable_fraction"] == pytest.approx(counts["trainable_fraction"])


def test_single_run_tags_and_name(single):
    _, _, _, run = single
    tags = run.data.tags
    assert tags["runner.family"] == "bert"
    assert tags["runner.head"] == "seqcls"
    assert tags["runner.freeze"] == "none"
    assert tags["runner.init"] == "scratch"
    command = tags["runner.command"]
    assert command.startswith("python -m runner "), command  # a command one can rerun
    assert "head.num_labels=2" in command and "freeze=none" in command
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True)
    if head.returncode == 0:  # tests run inside the git checkout
        assert tags["runner.git_commit"] == head.stdout.strip()
    else:
        assert "runner.git_commit" not in tags
    assert run.info.run_name.startswith("bert-seqcls-none[")
    assert "head.num_labels=2" in run.info.run_name


def test_single_run_artifacts(single, tmp_path):
    _, _, client, run = single
    run_id = run.info.run_id
    found = artifact_paths(client, run_id)
    assert {"config/resolved.yaml", "config/overrides.txt", "freeze/plan.csv"} <= found
    assert not any(p.startswith("error/") for p in found)
    overrides = artifact_text(client, run_id, "config/overrides.txt", tmp_path).splitlines()
    assert overrides == SINGLE
    rows = list(csv.DictReader(io.StringIO(artifact_text(client, run_id, "freeze/plan.csv",
                                                         tmp_path))))
    assert list(rows[0]) == ["name", "class", "total", "trainable", "frozen"]
    (classifier,) = [r for r in rows if r["name"] == "classifier"]
    assert classifier["class"] == "Linear"
    assert int(classifier["total"]) == 32 * 2 + 2  # hidden 32 -> 2 labels
    assert int(classifier["trainable"]) == 66 and int(classifier["frozen"]) == 0


# ------------------------------------------------------- 2. a param too long for MLflow


def test_long_param_value_is_stored_whole_as_an_artifact(tmp_path_factory, tmp_path):
    work = workdir(tmp_path_factory, "long-param")
    patterns = [f"classifier|unused_{i:04d}" for i in range(300)]  # all match the classifier
    store = work.path.parent / "store"  # an explicit sqlite store outside the run's folder
    args = override(FAST, "freeze=custom", f"freeze.trainable=[{','.join(patterns)}]",
                    "trainer.max_epochs=1", f"logger.tracking_uri=sqlite:///{store}/mlflow.db")
    ok(work.run(*args))
    assert not work.db.exists()
    client, run = only_run(store / "mlflow.db")
    assert run.info.status == "FINISHED"
    # the store is self-contained: its artifacts lie beside it, not where the run started
    assert not (work.path / "mlruns").exists()
    assert list((store / "mlruns").rglob("plan.csv"))
    artifact = "params/freeze.trainable.txt"
    assert artifact in run.data.params["freeze.trainable"]
    assert len(run.data.params["freeze.trainable"]) <= 6000
    stored = artifact_text(client, run.info.run_id, artifact, tmp_path)
    assert len(stored) > 6000
    assert json.loads(stored) == patterns  # whole, not truncated
    metrics = run.data.metrics
    assert metrics["params/trainable"] == 66  # only the classifier trains
    assert metrics["params/frozen"] == metrics["params/total"] - 66


# -------------------------------------------------------------------- 3. logger=none


def test_logger_none_writes_no_store(tmp_path_factory):
    work = workdir(tmp_path_factory, "no-logger")
    ok(work.run(*override(FAST, "logger=none", "trainer.max_epochs=1")))
    assert not work.db.exists()
    assert not (work.path / "mlruns").exists()
    (run_file,) = run_files(work)
    info = json.loads(run_file.read_text())
    assert info["status"] == "FINISHED" and "mlflow_run_id" not in info


# -------------------------------------------------------------------------- 4. FAILED


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    """A run whose data has a label out of range, started with MLFLOW_RUN_ID set."""
    work = workdir(tmp_path_factory, "failed")
    with open(work.path / "bad.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(24):
            writer.writerow([f"some text number {i}", 5 if i == 7 else i % 2])
    bystander = bystander_run(work.db)
    args = override(FAST, "data=local", "data.train_file=bad.csv", "head.num_labels=2")
    result = work.run(*args, env=work.env(MLFLOW_RUN_ID=bystander))
    return work, result, bystander


def test_exception_in_a_run_marks_it_failed(failed, tmp_path):
    work, result, bystander = failed
    assert result.returncode != 0
    assert "label 5" in result.stderr
    client, runs = mlflow_runs(work.db)
    (run,) = [r for r in runs if r.info.run_id != bystander]
    assert run.info.status == "FAILED"
    assert "label 5" in run.data.tags["runner.error"]
    assert "DataError" in run.data.tags["runner.error"]
    traceback = artifact_text(client, run.info.run_id, "error/traceback.txt", tmp_path)
    assert "Traceback" in traceback and "label 5" in traceback
    (run_file,) = run_files(work)
    assert json.loads(run_file.read_text())["status"] == "FAILED"


def test_mlflow_run_id_in_the_environment_does_not_hijack_a_run(failed):
    work, _, bystander = failed
    _, runs = mlflow_runs(work.db)
    assert len(runs) == 2  # the bystander and a new run
    assert_untouched_bystander(work.db, bystander)


# ---------------------------------------------------------- 5. SIGTERM, then resume


@pytest.mark.slow
def test_sigterm_kills_the_run_and_resume_continues_it(tmp_path_factory):
    work = workdir(tmp_path_factory, "sigterm")
    epochs = 10  # enough steps left after the first checkpoint for SIGTERM to land first
    args = interruptible(epochs)
    proc = work.start(*args)
    try:
        wait_for(lambda: checkpoints(work), "a first checkpoint", proc, describe=work.output)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130, work.output()[-5000:]
    finally:
        stop(proc)
    assert "stopped by SIGTERM" in work.output()

    client, run = only_run(work.db)
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    assert "SIGTERM" in run.data.tags["runner.error"]
    (run_file,) = run_files(work)
    assert json.loads(run_file.read_text())["status"] == "KILLED"
    saved = checkpoints(work)
    assert saved, "no checkpoint after SIGTERM"
    stopped_at = max(json.loads(p.read_text())["step"] for p in saved)
    total = epochs * STEPS_PER_EPOCH
    assert 0 < stopped_at < total
    assert steps(client, run_id, "train/loss") == list(range(1, stopped_at + 1))
    params_before = run.data.params

    ok(work.run(*args, "trainer.resume=auto"))
    client, resumed = only_run(work.db)  # the same MLflow run, not a new one
    assert resumed.info.run_id == run_id
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["runner.resumed"] == "true"
    # A finished run does not keep the error of the interruption it recovered from.
    assert "runner.error" not in resumed.data.tags
    assert steps(client, run_id, "train/loss") == list(range(1, total + 1))
    assert steps(client, run_id, "params/total") == [0]  # not logged again by the resume
    assert resumed.data.params == params_before
    assert json.loads(run_file.read_text())["status"] == "FINISHED"


# ------------------------------------------------ 6. SIGKILL leaves orphaned runs


def test_sigkilled_runs_are_marked_killed_by_the_next_start(tmp_path_factory):
    """SIGKILL lets nothing close a run; the next start into the store marks the runs of the
    dead process KILLED. The killed process is a sweep: its job's run and its parent run
    are both left RUNNING."""
    work = workdir(tmp_path_factory, "sigkill")
    proc = work.start("-m", "head.num_labels=2,3", *interruptible(100))

    def training_run_id():
        for path in run_files(work):
            found = json.loads(path.read_text()).get("mlflow_run_id")
            if found and checkpoints(work):  # tracked, and training
                return found
        return None

    try:
        job_run = wait_for(training_run_id, "a tracked run in training", proc,
                           describe=work.output)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        stop(proc)
    _, parent, children = sweep_runs(work.db)
    assert [c.info.run_id for c in children] == [job_run]
    assert parent.info.status == children[0].info.status == "RUNNING"  # nobody closed them
    orphans = {parent.info.run_id, job_run}

    ok(work.run(*override(FAST, "trainer.max_epochs=1")))
    _, runs = mlflow_runs(work.db)
    assert len(runs) == 3
    for run in runs:
        if run.info.run_id in orphans:
            assert run.info.status == "KILLED", run.info.run_name
            assert str(proc.pid) in run.data.tags["runner.killed_reason"]
        else:
            assert run.info.status == "FINISHED"
            assert "runner.killed_reason" not in run.data.tags


# -------------------------------------------------------------------------- 7. sweep


def sweep_runs(db: Path, uri: str | None = None):
    client, runs = mlflow_runs(db)
    parents = [r for r in runs if r.data.tags.get("runner.sweep_parent") == "true"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    (parent,) = parents
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return client, parent, children


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    work = workdir(tmp_path_factory, "sweep")
    result = work.run("-m", "head.num_labels=2,3", *FAST)
    return work, result


def test_sweep_has_one_parent_and_finished_children(sweep):
    work, result = sweep
    ok(result)
    client, parent, children = sweep_runs(work.db)
    _, runs = mlflow_runs(work.db)
    assert len(runs) == 3
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep/jobs"] == 2
    assert parent.data.metrics["sweep/failed"] == 0
    assert parent.data.tags["runner.swept"] == "head.num_labels"
    assert len(children) == 2
    assert sorted(c.data.tags["runner.swept.head.num_labels"] for c in children) == ["2", "3"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.params["head.num_labels"] == child.data.tags[
            "runner.swept.head.num_labels"]


def test_sweep_parent_points_at_the_best_child(sweep):
    work, _ = sweep
    _, parent, children = sweep_runs(work.db)
    by_id = {c.info.run_id: c for c in children}
    best = by_id[parent.data.tags["runner.best_child_run_id"]]
    assert parent.data.metrics["best/objective"] == best.data.metrics["objective"]
    assert best.data.metrics["objective"] == max(c.data.metrics["objective"] for c in children)


def test_sigterm_stops_the_whole_sweep(tmp_path_factory):
    work = workdir(tmp_path_factory, "sweep-sigterm")
    proc = work.start("-m", "head.num_labels=2,3", *interruptible(100))
    try:
        wait_for(lambda: checkpoints(work), "a checkpoint of the first job", proc,
                 describe=work.output)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130, work.output()[-5000:]
    finally:
        stop(proc)
    assert "KILLED job #0" in work.output()
    _, parent, children = sweep_runs(work.db)
    assert parent.info.status == "KILLED"
    assert [c.data.tags["runner.swept.head.num_labels"] for c in children] == ["2"]  # no #1
    assert children[0].info.status == "KILLED"


# ---------------------------------------------------- 8. a sweep with a failing job


@pytest.fixture(scope="module")
def failing_sweep(tmp_path_factory):
    """head.num_labels=1 cannot fit the 2-class sample data; MLFLOW_RUN_ID is set too."""
    work = workdir(tmp_path_factory, "failing-sweep")
    bystander = bystander_run(work.db)
    result = work.run("-m", "head.num_labels=1,2", *FAST,
                      env=work.env(MLFLOW_RUN_ID=bystander))
    return work, result, bystander


def test_a_failing_job_fails_the_sweep_not_the_other_jobs(failing_sweep):
    work, result, _ = failing_sweep
    assert result.returncode != 0
    assert "FAILED job #0" in result.stderr
    assert "head.num_labels=1" in result.stderr.split("FAILED job #0", 1)[1]
    _, parent, children = sweep_runs(work.db)
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["sweep/jobs"] == 2
    assert parent.data.metrics["sweep/failed"] == 1
    assert "head.num_labels=1" in parent.data.tags["runner.failed_jobs"]
    # the head.num_labels=1 job is refused by validation, before its run would start
    by_value = {c.data.tags["runner.swept.head.num_labels"]: c for c in children}
    assert set(by_value) == {"2"}
    assert by_value["2"].info.status == "FINISHED"
    assert parent.data.tags["runner.best_child_run_id"] == by_value["2"].info.run_id


def test_a_failing_job_reports_its_user_error_without_a_traceback(failing_sweep):
    work, result, _ = failing_sweep
    log_text = result.stdout + result.stderr + "".join(
        p.read_text() for p in work.path.glob("**/*.log"))
    assert "job 0 (head.num_labels=1" in log_text and "failed:\nerror:" in log_text
    assert "Traceback" not in log_text


# --------------------------------------------------------- 9. MLFLOW_RUN_ID in a sweep


def test_mlflow_run_id_in_the_environment_does_not_hijack_a_sweep(failing_sweep):
    work, _, bystander = failing_sweep
    _, parent, children = sweep_runs(work.db)
    _, runs = mlflow_runs(work.db)
    assert len(runs) == 3  # the bystander, the parent and the child, all distinct
    assert bystander not in {parent.info.run_id, *(c.info.run_id for c in children)}
    assert_untouched_bystander(work.db, bystander)


# ------------------------------------------------- 10. parallel jobs on a fresh store


@pytest.mark.slow
def test_parallel_joblib_sweep_on_a_fresh_sqlite_store(tmp_path_factory):
    work = workdir(tmp_path_factory, "joblib")
    assert not work.db.exists()
    result = work.run("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                      "head.num_labels=2,3,4,5", *override(FAST, "trainer.max_epochs=1"))
    logs = "".join(p.read_text() for p in work.path.glob("outputs/**/*.log"))
    assert "database is locked" not in result.stdout + result.stderr + logs
    ok(result)
    _, parent, children = sweep_runs(work.db)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep/jobs"] == 4
    assert parent.data.metrics["sweep/failed"] == 0
    assert sorted(c.data.tags["runner.swept.head.num_labels"] for c in children) == [
        "2", "3", "4", "5"]
    assert [c.info.status for c in children] == ["FINISHED"] * 4
    assert len({c.data.tags["runner.pid"] for c in children}) > 1  # really in parallel


# ------------------------------------------------------------------ 11. HTTP tracking


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def mlflow_server_process(port: int, backend_uri: str, cwd: Path, log,
                          artifacts: Path | None = None) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:`port` over `backend_uri` (artifacts proxied into
    `artifacts` when given), writing to the open file `log`. Without the caller's MLFLOW_*
    settings or background job workers, in its own process group (uvicorn runs as a child)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    proxied = ["--artifacts-destination", str(artifacts)] if artifacts else []
    return subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", backend_uri, *proxied],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1, artifacts proxied into a temporary folder."""
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = base / "server.log"
    with open(log_file, "w") as log:
        proc = mlflow_server_process(port, f"sqlite:///{base}/server.db", base, log,
                                     artifacts=base / "artifacts")
    try:
        wait_for(lambda: healthy(url), f"mlflow server at {url}", proc, timeout=WAIT_TIMEOUT,
                 describe=log_file.read_text)
        yield url, base
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        stop(proc)


def test_http_tracking_server(mlflow_server, tmp_path_factory, tmp_path):
    from mlflow.tracking import MlflowClient

    url, server_dir = mlflow_server
    work = workdir(tmp_path_factory, "http")
    ok(work.run(*override(FAST, "trainer.max_epochs=1"), f"logger.tracking_uri={url}"))
    assert not work.db.exists() and not (work.path / "mlruns").exists()

    client = MlflowClient(url)
    exp = client.get_experiment_by_name("runner")
    (run,) = client.search_runs([exp.experiment_id])
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params["logger.tracking_uri"] == url
    assert run.data.params["model.init"] == "scratch"
    assert run.data.tags["runner.head"] == "seqcls"
    assert steps(client, run_id, "params/total") == [0]
    assert steps(client, run_id, "train/loss") == list(range(1, STEPS_PER_EPOCH + 1))
    assert "objective" in run.data.metrics and "eval/accuracy" in run.data.metrics
    assert {"config/resolved.yaml", "config/overrides.txt", "freeze/plan.csv"} <= \
        artifact_paths(client, run_id)
    assert "classifier" in artifact_text(client, run_id, "freeze/plan.csv", tmp_path)
    assert list((server_dir / "artifacts").rglob("plan.csv")), "artifacts not on the server"
    (run_file,) = run_files(work)
    assert json.loads(run_file.read_text())["tracking_uri"] == url

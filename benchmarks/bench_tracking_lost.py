"""What a tracking server that goes away costs a run: wall time and exit code of one tiny
run (`python -m runner`, scratch BERT, bundled sentiment data, every step logged) against a
real `mlflow server` that stays up, is SIGKILLed, or is SIGSTOPped (hung: it accepts
connections and never answers) once the run has logged its first metric.

    python benchmarks/bench_tracking_lost.py [--steps 500] [--retry-s 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2):
            return True
    except OSError:
        return False


def wait(predicate, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)


def logged_a_metric(url: str) -> bool:
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(url)
        exp = client.get_experiment_by_name("runner")
        runs = client.search_runs([exp.experiment_id]) if exp else []
    except Exception:  # noqa: BLE001  (still starting)
        return False
    return bool(runs) and "train/loss" in runs[0].data.metrics


def one(fault: str, steps: int, retry_s: str, base: Path) -> tuple[float, float, int]:
    """(seconds from the first metric to the end, whole run, exit code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    url = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
         url.rsplit(":", 1)[1], "--workers", "1", "--backend-store-uri",
         f"sqlite:///{base}/server.db", "--artifacts-destination", str(base / "artifacts")],
        cwd=base, env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait(lambda: answers(url))
        samples = steps * 8 // 2
        args = ["model=bert", "model.init=scratch", "head=seqcls", "freeze=none",
                *(f"+model.config_overrides.{s}" for s in (
                    "hidden_size=32", "num_hidden_layers=2", "num_attention_heads=2",
                    "intermediate_size=37", "vocab_size=99")),
                f"data.max_train_samples={samples}", "data.max_eval_samples=16",
                "data.max_length=64", "tokenizer.vocab_size=300", "trainer.batch_size=8",
                "trainer.max_epochs=2", "trainer.log_every=1", f"logger.tracking_uri={url}"]
        start = time.monotonic()
        run = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=base,
                               env={**env, "RUNNER_TRACKING_RETRY_S": retry_s},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: logged_a_metric(url) or run.poll() is not None)
        first = time.monotonic()
        if fault != "none":
            os.killpg(server.pid, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        code = run.wait(timeout=900)
        end = time.monotonic()
        return end - first, end - start, code
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--retry-s", default="30")
    args = parser.parse_args()
    print(f"{args.steps} steps, each logged; RUNNER_TRACKING_RETRY_S={args.retry_s}")
    print(f"{'server':<8} {'after 1st metric s':>18} {'whole run s':>12} {'exit':>5}")
    for fault in ("none", "killed", "hung"):
        with tempfile.TemporaryDirectory() as tmp:
            after, whole, code = one(fault, args.steps, args.retry_s, Path(tmp))
        print(f"{fault:<8} {after:>18.1f} {whole:>12.1f} {code:>5}")


if __name__ == "__main__":
    main()

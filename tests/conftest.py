"""Shared test helpers: compose configs like the CLI does, tiny models, isolated caches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tiny architectures per family (as transformers' own model tests build them).
TINY = {
    "bert": ["hidden_size=32", "num_hidden_layers=2", "num_attention_heads=2",
             "intermediate_size=37"],
    "distilbert": ["dim=32", "n_layers=2", "n_heads=2", "hidden_dim=37"],
    "roberta": ["hidden_size=32", "num_hidden_layers=2", "num_attention_heads=2",
                "intermediate_size=37"],
    "gpt2": ["n_embd=32", "n_layer=2", "n_head=2"],
    "t5": ["d_model=32", "num_layers=2", "num_heads=2", "d_ff=37", "d_kv=16"],
}


def tiny(family: str, *extra: str, vocab: int | None = 99) -> list[str]:
    """Overrides for a tiny scratch model of `family`."""
    sizes = TINY[family] + ([f"vocab_size={vocab}"] if vocab else [])
    return [f"model={family}", "model.init=scratch",
            *(f"+model.config_overrides.{s}" for s in sizes), *extra]


def compose(overrides: list[str]):
    from runner.config.compose import compose as runner_compose

    return runner_compose(overrides)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            module: str = "runner", timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m <module> args` as a user would; returns the finished process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or REPO,
                          capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Tokenizer/feature caches and MLflow runs of one test never leak into another."""
    cache = tmp_path_factory.mktemp("runner-cache")
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    return cache


def fast(head: str, family: str = "bert", *extra: str) -> list[str]:
    """Overrides for a training run of a few seconds: tiny scratch model, a slice of the
    bundled sample data, small tokenizer and sequences."""
    return [*tiny(family, f"head={head}"), "data.max_train_samples=48",
            "data.max_eval_samples=16", "data.max_length=64", "data.block_size=32",
            "tokenizer.vocab_size=300", "tokenizer.min_frequency=1", "trainer.batch_size=8",
            "trainer.eval_batch_size=8", "trainer.max_epochs=2", "trainer.log_every=1",
            "head.max_target_length=16", "head.doc_stride=16", *extra]


def mlflow_runs(db: Path, experiment: str = "runner"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    return client, (client.search_runs([exp.experiment_id]) if exp else [])


@pytest.fixture(scope="session")
def ui_sweep(tmp_path_factory):
    """A real sweep over two heads that logs and registers its models (a few steps each),
    as `python -m runner -m ...` leaves it: (work dir, sqlite store). Shared by the MLflow
    UI tests and the browser test."""
    work = tmp_path_factory.mktemp("ui-sweep")
    overrides = [o if o != "head=seqcls" else "head=seqcls,qa" for o in fast("seqcls")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(RUNNER_CACHE_DIR=str(work / "cache"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-m", "runner", "-m", *overrides, "trainer.max_steps=3",
         "logger.log_model=true", "logger.register_as=tiny"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    return work, work / "mlflow.db"

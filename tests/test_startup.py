"""Fast start-up: help, showing the config and config errors never load the heavy stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

HEAVY = ("torch", "transformers", "datasets", "mlflow")

COMMANDS = [
    ["-m", "runner", "--help"],
    ["-m", "runner", "--cfg", "job"],
    ["-m", "runner", "-v", "--cfg", "job"],  # -v is runner's, stripped before Hydra parses
    ["-m", "runner.inspect", "--help"],
    ["-m", "runner", "model=bert", "head=seq2seq"],  # a validation error
    ["-m", "runner.compare", "--help"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[1:]) for c in COMMANDS])
def test_light_commands_do_not_import_the_heavy_stack(args):
    done = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & set(HEAVY), imported & set(HEAVY)
    assert done.returncode in (0, 2), done.stderr[-2000:]

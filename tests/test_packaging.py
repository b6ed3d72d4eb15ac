"""A non-editable install finds its config tree and presets from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_install_runs_inspect_from_another_directory(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("runner-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy comes first on the path, ahead of the editable checkout.
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c",
                            "import runner.config.compose as c; print(c.CONFIG_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(target))
    result = subprocess.run(
        [sys.executable, "-m", "runner.inspect", "experiment=bert_head_only",
         "inspect.output=json"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["params"]["trainable"] == 2_307
    result = subprocess.run([sys.executable, "-m", "runner", "--cfg", "job", "model=t5"],
                            cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "family: t5" in result.stdout
    # runner's Optuna sweeper ships in Hydra's hydra_plugins namespace (no __init__ there)
    plugin = target / "hydra_plugins" / "runner_optuna_sweeper"
    assert (plugin / "sweeper.py").is_file()
    assert not (target / "hydra_plugins" / "__init__.py").exists()
    result = subprocess.run([sys.executable, "-m", "runner", "--cfg", "hydra",
                             "experiment=optuna_search"], cwd=elsewhere, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "hydra_plugins.runner_optuna_sweeper.sweeper.RunnerOptunaSweeper" in result.stdout

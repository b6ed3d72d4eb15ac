"""Where the Hydra config tree lives, and composing it outside a Hydra app.

From a source checkout the tree is the top-level conf/ (conf/experiment links to
experiments/); an installed package carries a copy as runner/conf.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

import runner.config.schema  # noqa: F401  (registers the structured-config schema)

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/runner


def config_dir() -> str:
    checkout = _PACKAGE_DIR.parents[1] / "conf"
    if (checkout / "config.yaml").is_file() and _PACKAGE_DIR.parent.name == "src":
        return str(checkout)
    return str(_PACKAGE_DIR / "conf")


CONFIG_DIR = config_dir()


def compose(overrides: list[str]) -> DictConfig:
    """The config `python -m runner <overrides>` would run, without starting a Hydra job."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=False)

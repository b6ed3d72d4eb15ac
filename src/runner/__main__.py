"""`python -m runner` / `runner`: compose the config with Hydra, then run the experiment."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from runner.cli import in_multirun, refuse_unlisted_targets, report_errors
from runner.config.compose import CONFIG_DIR
from runner.distributed import share_run_stamp


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    # Imported here so --help, --cfg and config errors never load torch.
    from runner.run import run

    if in_multirun():
        from runner.track.sweep import run_job

        return run_job(cfg, run)
    with report_errors():
        return run(cfg)


def entry() -> None:
    refuse_unlisted_targets(sys.argv[1:])
    share_run_stamp(sys.argv[1:])  # before Hydra composes: all ranks, one run directory
    main()


if __name__ == "__main__":
    entry()

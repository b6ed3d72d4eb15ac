"""`python -m runner` / `runner`: compose the config with Hydra, then run the experiment.

`-v` / `--verbose` (anywhere on the command line; Hydra never sees it) shows runner's
DEBUG lines and lets the libraries speak (src/runner/console.py).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from runner import console
from runner.cli import in_multirun, refuse_unlisted_targets, report_errors, respell
from runner.config.compose import CONFIG_DIR
from runner.distributed import share_run_stamp

# Set once Hydra hands main() a composed config: an exit before that is a composition error.
_composed: list[bool] = []


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    _composed.append(True)
    console.drop_log_lines_a_full_disk_refuses()  # Hydra has set up the job's log file
    # Imported here so --help, --cfg and config errors never load torch.
    from runner.run import run

    if in_multirun():
        from runner.track.sweep import run_job

        return run_job(cfg, run)
    with report_errors():
        return run(cfg)


def register_sweeper() -> None:
    """runner's Optuna sweeper, registered by hand: Hydra's plugin scan cannot list the
    modules behind an editable install's path hook (pip install -e), and refuses a sweeper
    class it has not registered. Harmless where the scan found it too."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.runner_optuna_sweeper.sweeper import RunnerOptunaSweeper

    Plugins.instance().register(RunnerOptunaSweeper)


def entry() -> None:
    argv, verbose = console.strip_verbose(sys.argv[1:])
    argv = respell(argv)
    sys.argv[1:] = argv  # Hydra reads sys.argv
    console.setup(verbose)
    refuse_unlisted_targets(argv)
    share_run_stamp(argv)  # before Hydra composes: all ranks, one run directory
    register_sweeper()
    try:
        main()
    except SystemExit as exited:
        # Hydra prints a composition error (an unknown option with the available ones, a
        # misspelled key) itself and exits 1; it is bad input, so the exit code is 2.
        if exited.code == 1 and not _composed:
            sys.exit(2)
        raise


if __name__ == "__main__":
    entry()

"""runner's Hydra sweeper on Optuna >= 4 (`hydra/sweeper=optuna`); see runner.track.study."""

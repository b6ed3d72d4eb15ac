"""`runner.evaluate`'s test/* metrics into MLflow: onto the trained run itself, or onto a
new evaluation run tagged with the trained run's id (--new-run)."""

from __future__ import annotations

import logging
import time

from runner.errors import RunnerError
from runner.track import tags as names
from runner.track.store import client_for, run_exists

log = logging.getLogger(__name__)

# The trained run's tags an evaluation run repeats, so it is found and read the same way.
COPIED_TAGS = (names.FAMILY, names.HEAD, names.FREEZE, names.INIT, names.MODEL,
               names.OBJECTIVE, names.OBJECTIVE_MODE, names.OUTPUT_DIR)


def log_test_metrics(uri: str, run_id: str, metrics: dict[str, float], where: str,
                     new_run: bool) -> str:
    """Log `metrics` (test/*); the id of the MLflow run they went to."""
    from mlflow.entities import Metric

    client = client_for(uri)
    if not run_exists(client, run_id):
        raise RunnerError(f"the run's MLflow run {run_id} is not in the store {uri}. Point "
                          "MLFLOW_TRACKING_URI at the store it was trained with, or score "
                          "into a new run there with --new-run.")
    source = client.get_run(run_id)
    target, step = run_id, 0
    if new_run:
        copied = {k: v for k, v in source.data.tags.items() if k in COPIED_TAGS}
        name = source.data.tags.get(names.NAME, source.info.run_name)
        target = client.create_run(
            source.info.experiment_id, run_name=f"evaluate {name}"[:250],
            tags={**copied, names.EVALUATION_OF: run_id, names.NAME: f"evaluate {name}"}
        ).info.run_id
    else:  # the same step as any earlier test/* value, logged later: this one is latest
        step = max((m.step for key in metrics for m in client.get_metric_history(target, key)),
                   default=0)
    now = int(time.time() * 1000)
    client.log_batch(target, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])
    client.set_tag(target, names.TEST_SPLIT, where[:5000])
    if new_run:
        client.set_terminated(target, status="FINISHED")
    log.info("test metrics logged to MLflow run %s (%s)", target, uri)
    return target

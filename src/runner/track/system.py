"""System metrics (CPU, memory, disk, network; GPU where nvidia-ml-py finds one), sampled by
MLflow's own SystemMetricsMonitor into `system/*` metrics of the main process's run.

The run is made with MlflowClient, so the monitor is given its id and the store directly
(mlflow.start_run(log_system_metrics=True) would need a fluent active run). Samples come
every few seconds, and one last sample is taken at the end, so even a run of a few steps
has its `system/cpu_utilization_percentage`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

SAMPLING_SECONDS = 2.0  # $MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides it


@contextmanager
def system_metrics(run_id: str, uri: str, resumed: bool,
                   server_away=lambda: False) -> Iterator[None]:
    """Sample while the block runs; a monitor that cannot start only costs a warning. No
    last sample while `server_away()` (a hung server would cost MLflow's timeouts again)."""
    monitor = _start(run_id, uri, resumed)
    try:
        yield
    finally:
        if monitor is not None:
            _finish(monitor, last_sample=not server_away())


def _start(run_id: str, uri: str, resumed: bool):
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_SECONDS,
                                       resume_logging=resumed, tracking_uri=uri)
        monitor.start()
    except Exception as err:  # noqa: BLE001  (psutil missing, store unreachable: go on)
        log.warning("system metrics are not recorded: %s: %s", type(err).__name__, err)
        return None
    return monitor


def _finish(monitor, last_sample: bool = True) -> None:
    try:
        monitor.finish()
        if not last_sample:
            return
        # A last sample: the monitor publishes only after a full interval.
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    except Exception as err:  # noqa: BLE001
        log.warning("the last system metrics were not recorded: %s: %s",
                    type(err).__name__, err)

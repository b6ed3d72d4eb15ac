"""What the tracking server has not received yet: kept in order, sent again later.

A run writes its metrics, params and text artifacts through one `Outbox`. When the server
does not answer (it died, restarts, the network blipped), training goes on: the values stay
in memory, in order, with their own steps and timestamps, and are sent again at a later
write, at most once per cool-down, so a dead server does not cost every step an HTTP
timeout. What is still unsent when the run ends goes to `unsent_metrics.jsonl` in the run
directory, which a resumed run sends first. Only failures to reach the server degrade;
a request the server refuses (a bad value, a changed param) still raises.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path

from runner.files import atomic_write

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0  # between attempts while the server is away; RUNNER_TRACKING_RETRY_S
UNSENT_FILE = "unsent_metrics.jsonl"
METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
PARAMS_PER_BATCH = 100
TRANSIENT_CODES = {"REQUEST_LIMIT_EXCEEDED"}  # 429; any 5xx is transient too
PROBE_TIMEOUT = 2.0  # seconds: is an away server back? (a hung one costs this, not MLflow's)


def retry_seconds() -> float:
    value = os.environ.get("RUNNER_TRACKING_RETRY_S", "")
    try:
        return max(0.0, float(value)) if value else RETRY_SECONDS
    except ValueError:
        log.warning("RUNNER_TRACKING_RETRY_S=%r is not a number of seconds; using %g",
                    value, RETRY_SECONDS)
        return RETRY_SECONDS


def unreachable(err: BaseException) -> bool:
    """Whether `err` says the server could not be reached (not that it refused the request):
    MLflow's REST client wraps connection errors and timeouts as INTERNAL_ERROR (HTTP 500),
    and a server that is restarting answers 5xx."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(err, (OSError, requests.RequestException)):
        return True
    if isinstance(err, MlflowException):
        return err.get_http_status_code() >= 500 or err.error_code in TRANSIENT_CODES
    return False


class Outbox:
    """The run's writes to MLflow, in order; those the server missed are sent later."""

    def __init__(self, client, run_id: str, uri: str | None):
        self.client = client
        self.run_id = run_id
        self.uri = uri
        self.cooldown = retry_seconds()
        self.metrics: list = []  # mlflow.entities.Metric, oldest first
        self.params: list = []  # mlflow.entities.Param
        self.texts: list[tuple[str, str]] = []  # (text, artifact file)
        self.down = False  # the last attempt failed
        self.last_try = 0.0
        self.step = 0  # the latest step written, for the messages

    # ------------------------------------------------------------------ writing

    def metrics_at(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.metrics += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.step = step
        self.send()

    def add_params(self, params: list) -> None:
        self.params += params
        self.send()

    def add_text(self, text: str, artifact_file: str) -> None:
        self.texts.append((text, artifact_file))
        self.send()

    def send(self, now: bool = False) -> bool:
        """Send everything pending (oldest first); True when nothing is left. While the
        server is away, only one attempt per cool-down, unless `now`."""
        if self.down and not now and time.monotonic() - self.last_try < self.cooldown:
            return False
        was_down, pending = self.down, len(self.metrics)
        try:
            if was_down:
                self._probe()
            self._drain()
        except Exception as err:
            if not unreachable(err):
                raise
            self.failed(err)
            return False
        if was_down:
            self.down = False
            log.warning("MLflow server back at step %d: sent %d pending metric values",
                        self.step, pending)
        return True

    def failed(self, err: BaseException) -> None:
        """The server did not answer: say so once, then try again after the cool-down."""
        self.last_try = time.monotonic()
        if self.down:
            log.debug("MLflow server %s still away: %s", self.uri, err)
            return
        self.down = True
        log.warning("the MLflow server %s did not answer at step %d (%s); training goes on "
                    "and keeps the metrics in memory, sending them again every %g s",
                    self.uri, self.step, _short(err), self.cooldown)

    def read(self, fetch, default):
        """`fetch()` from the server, or `default` while it is away."""
        if self.down:
            return default
        try:
            return fetch()
        except Exception as err:
            if not unreachable(err):
                raise
            self.failed(err)
            return default

    def _probe(self) -> None:
        """Raise unless an HTTP server that was away answers at all (any status: a proxy
        without /health, a login page); cheap next to MLflow's timeout and retries."""
        if self.uri and self.uri.startswith(("http://", "https://")):
            import requests

            # An SSL error means it answered: certificates are for MLflow's settings to judge.
            with contextlib.suppress(requests.exceptions.SSLError):
                requests.head(f"{self.uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT)

    def _drain(self) -> None:
        # Each chunk leaves the queue once the server has it: a failure mid-way resends
        # only the rest (a chunk resent after a lost reply is harmless: a metric with the
        # same key, step, timestamp and value is stored once).
        while self.params:
            self.client.log_batch(self.run_id, params=self.params[:PARAMS_PER_BATCH])
            del self.params[:PARAMS_PER_BATCH]
        while self.metrics:
            self.client.log_batch(self.run_id, metrics=self.metrics[:METRICS_PER_BATCH])
            del self.metrics[:METRICS_PER_BATCH]
        while self.texts:
            self.client.log_text(self.run_id, *self.texts[0])
            del self.texts[0]

    # --------------------------------------------------------------- left over

    @property
    def pending(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.texts)

    def keep(self, run_dir: Path) -> Path | None:
        """A last try to send what is pending, else unsent_metrics.jsonl (its path)."""
        if not self.pending:
            return None
        try:
            if self.send(now=True):
                return None
        except Exception as err:  # noqa: BLE001  (a refused value must not hide the run's error)
            log.error("the pending MLflow values were not sent: %s: %s", type(err).__name__,
                      _short(err))
        return self.keep_unsent(run_dir)

    def keep_unsent(self, run_dir: Path) -> Path | None:
        """What is pending, in unsent_metrics.jsonl (its path); None when nothing is, or
        when the disk refuses the file (the log says what is lost)."""
        if not self.pending:
            return None
        try:
            path = self.save(run_dir)
        except OSError as err:  # a full disk: say what is lost, keep the run's own error
            log.error("%d values the MLflow server %s did not receive are lost: %s",
                      self.pending, self.uri, err)
            return None
        log.warning("kept %d values the MLflow server %s did not receive in %s", self.pending,
                    self.uri, path)
        return path

    def save(self, run_dir: Path) -> Path:
        """Write what is unsent to <run_dir>/unsent_metrics.jsonl, one JSON object a line."""
        lines = [{"param": p.key, "value": p.value} for p in self.params]
        lines += [{"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
                  for m in self.metrics]
        lines += [{"artifact": path, "text": text} for text, path in self.texts]
        path = Path(run_dir) / UNSENT_FILE
        atomic_write(path, "".join(json.dumps(line) + "\n" for line in lines))
        return path

    def load(self, run_dir: Path) -> int:
        """Queue what an earlier attempt left in <run_dir>/unsent_metrics.jsonl, send it
        and remove the file once sent; the number of metric values it held."""
        from mlflow.entities import Metric, Param

        path = Path(run_dir) / UNSENT_FILE
        if not path.is_file():
            return 0
        try:
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            params = [Param(d["param"], d["value"]) for d in lines if "param" in d]
            metrics = [Metric(d["key"], d["value"], d["timestamp"], d["step"])
                       for d in lines if "key" in d]
            texts = [(d["text"], d["artifact"]) for d in lines if "artifact" in d]
        except (ValueError, KeyError, TypeError) as err:
            log.warning("%s is not readable (%s); its values are not sent", path, _short(err))
            return 0
        self.params, self.metrics, self.texts = params, metrics, texts
        count = len(self.metrics)
        if self.send(now=True):
            path.unlink()
            log.info("sent %d metric values an earlier attempt could not send (%s)", count,
                     path)
        return count


def _short(err: BaseException) -> str:
    """The gist of a connection error: MLflow's wraps urllib3's, which wraps the OS's."""
    text = " ".join(str(err).split())
    cause = re.search(r"\[Errno -?\d+\] [^'\")]+|Read timed out|Name or service not known",
                      text)
    if cause:
        return cause.group(0)
    return text if len(text) <= 300 else text[:300] + "…"

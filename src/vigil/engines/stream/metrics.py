"""What a ``vigil stream`` worker counts, for its log line, its status line and Prometheus."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["Metrics", "serve_prometheus"]

_WINDOW = 100_000  # latencies kept for the percentiles: the most recent rows


class Metrics:
    """Counters since the worker started, and the latency of recent results.

    ``latency`` is milliseconds from a message's Kafka timestamp (its producer's create time) to
    the moment its result is handed to the producer: scoring, the wait for lookahead rows and
    the batch wait included.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.consumed = self.scored = self.published = self.anomalies = 0
        self.dead_letters = self.replayed = self.restored = self.commits = 0
        self.lag = 0
        #: Bytes of each held series' last committed state (its changelog record).
        self.state_bytes: dict[str, int] = {}
        self.first_at: float | None = None  # monotonic times of the first and last message
        self.last_at: float | None = None
        self._latencies = np.zeros(_WINDOW)
        self._n = 0

    def latency(self, ms: np.ndarray) -> None:
        """Record the latencies of rows just published (the newest ``_WINDOW`` are kept)."""
        ms = np.asarray(ms, dtype=float)[-_WINDOW:]
        at = np.arange(self._n, self._n + len(ms)) % _WINDOW
        self._latencies[at] = ms
        self._n += len(ms)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of recent latencies in ms (NaN before any)."""
        kept = self._latencies[: min(self._n, _WINDOW)]
        return float(np.percentile(kept, q)) if len(kept) else float("nan")

    @property
    def rate(self) -> float:
        """Messages consumed per second since the start."""
        return self.consumed / max(time.monotonic() - self.started, 1e-9)

    @property
    def busy_rate(self) -> float:
        """Messages consumed per second from the first message to the last (no group join, no
        idle wait): the worker's throughput."""
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return self.consumed / (self.last_at - self.first_at)

    def line(self) -> str:
        """One log line: rate, lag, latency p50/p99, anomalies, dead letters."""
        return (f"{self.consumed} consumed ({self.rate:,.0f}/s), lag {self.lag}, latency p50 "
                f"{self.percentile(50):.1f} ms p99 {self.percentile(99):.1f} ms, "
                f"{self.anomalies} anomalous rows, {self.published} published, "
                f"{self.dead_letters} dead letters")

    def as_dict(self) -> dict[str, Any]:
        """Every figure, for a summary or a benchmark."""
        return {"consumed": self.consumed, "scored": self.scored, "published": self.published,
                "anomalies": self.anomalies, "dead_letters": self.dead_letters,
                "replayed": self.replayed, "restored": self.restored, "commits": self.commits,
                "lag": self.lag, "rate": self.rate, "busy_rate": self.busy_rate,
                "latency_p50_ms": self.percentile(50), "latency_p99_ms": self.percentile(99)}


def serve_prometheus(metrics: Metrics, port: int) -> Any:
    """Serve ``metrics`` as Prometheus text on ``http://0.0.0.0:port/metrics`` (a daemon
    thread of prometheus-client); returns the server."""
    from vigil._optional import require

    client = require("prometheus_client", "stream", "--metrics-port")
    core = require("prometheus_client.core", "stream", "--metrics-port")

    class _Collector:
        def collect(self) -> Any:
            counters = {"consumed": "input messages consumed",
                        "scored": "rows scored (final results)",
                        "published": "result messages published",
                        "anomalies": "rows inside anomaly events",
                        "dead_letters": "messages sent to the dead-letter topic",
                        "commits": "commits of states and offsets"}
            for name, text in counters.items():
                family = core.CounterMetricFamily(f"vigil_stream_{name}", text)
                family.add_metric([], getattr(metrics, name))
                yield family
            yield core.GaugeMetricFamily("vigil_stream_lag", "consumer lag in messages",
                                         value=metrics.lag)
            yield core.GaugeMetricFamily("vigil_stream_series", "series held",
                                         value=len(metrics.state_bytes))
            yield core.GaugeMetricFamily("vigil_stream_state_bytes",
                                         "bytes of the held series' committed states",
                                         value=sum(metrics.state_bytes.values()))
            for q in (50, 99):
                value = metrics.percentile(q)
                yield core.GaugeMetricFamily(f"vigil_stream_latency_p{q}_ms",
                                             f"latency p{q} of recent results, ms",
                                             value=0.0 if value != value else value)

    registry = client.CollectorRegistry()
    registry.register(_Collector())
    server, _ = client.start_http_server(port, registry=registry)
    return server

"""The router's Prometheus metrics, named as in docs/contracts.md (the autoscaler reads them
from every router pod's ``/metrics``). One registry per ``Router`` (tests run several in one
process); label children are cached because ``labels()`` costs a lock and a dict build per
call on the request path. ``server`` updates them; gauges that mirror live state (queue depth,
in-flight, endpoints) are read at scrape time from the pools.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["RouterMetrics"]

_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


class _LiveGauges(Collector):
    """Gauges computed when scraped: (name, help, callable returning {pool: value})."""

    def __init__(self, gauges: Iterable[tuple[str, str, Callable[[], dict[str, float]]]]) -> None:
        self._gauges = list(gauges)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, help_text, read in self._gauges:
            family = GaugeMetricFamily(name, help_text, labels=["pool"])
            for pool, value in sorted(read().items()):
                family.add_metric([pool], value)
            yield family


class RouterMetrics:
    def __init__(
        self,
        *,
        queue_depth: Callable[[], dict[str, float]],
        inflight: Callable[[], dict[str, float]],
        endpoints: Callable[[], dict[str, float]],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(
            _LiveGauges(
                [
                    (
                        "nemotron_router_queue_depth",
                        "Requests admitted but waiting for an engine slot (incl. pools at zero)",
                        queue_depth,
                    ),
                    (
                        "nemotron_router_inflight_requests",
                        "Requests forwarded to an engine and not finished",
                        inflight,
                    ),
                    ("nemotron_router_endpoints", "Ready endpoints known", endpoints),
                ]
            )
        )
        r = self.registry
        self._requests = Counter(
            "nemotron_router_requests", "Requests answered", ["pool", "code"], registry=r
        )
        self._duration = Histogram(
            "nemotron_router_request_duration_seconds",
            "Request latency, arrival to last byte",
            ["pool"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._ttft = Histogram(
            "nemotron_router_time_to_first_token_seconds",
            "Arrival to the first streamed byte of the answer",
            ["pool"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self._retries = Counter(
            "nemotron_router_retries", "Requests retried on another endpoint", ["pool"], registry=r
        )
        self._upstream_errors = Counter(
            "nemotron_router_upstream_errors",
            "Engine connect errors, 5xx answers and timeouts",
            ["pool"],
            registry=r,
        )
        self._lent = Counter(
            "nemotron_router_lent_requests",
            "Requests of a saturated pool run on a nearly idle engine of the other pool",
            ["pool", "lender"],
            registry=r,
        )
        self.generation = Gauge(
            "nemotron_router_config_generation", "Generation of the loaded config", registry=r
        )
        self._children: dict[tuple[str, str], object] = {}

    def _child(self, metric: Counter | Histogram, kind: str, *labels: str) -> object:
        key = (kind, "\x00".join(labels))
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            self._children[key] = child
        return child

    def request(self, pool: str, code: int) -> None:
        self._child(self._requests, "req", pool, str(code)).inc()  # type: ignore[attr-defined]

    def duration(self, pool: str, seconds: float) -> None:
        self._child(self._duration, "dur", pool).observe(seconds)  # type: ignore[attr-defined]

    def ttft(self, pool: str, seconds: float) -> None:
        self._child(self._ttft, "ttft", pool).observe(seconds)  # type: ignore[attr-defined]

    def retry(self, pool: str) -> None:
        self._child(self._retries, "retry", pool).inc()  # type: ignore[attr-defined]

    def upstream_error(self, pool: str) -> None:
        self._child(self._upstream_errors, "uerr", pool).inc()  # type: ignore[attr-defined]

    def lent(self, pool: str, lender: str) -> None:
        self._child(self._lent, "lent", pool, lender).inc()  # type: ignore[attr-defined]

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

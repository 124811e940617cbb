"""The emulator's ``/metrics``: vLLM's metric names (the router and autoscaler read these), in
a registry of its own. ``server`` updates the counters and histograms as requests finish and
sets the gauges from the scheduler (running, waiting, KV usage) at scrape time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "EngineMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# vLLM's bucket edges for these histograms.
_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
_E2E_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip


class EngineMetrics:
    """One engine's metrics, labelled ``model_name`` as vLLM labels them."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        label = ["model_name"]
        r = self.registry
        self._running = Gauge(
            "vllm:num_requests_running", "Requests in the model's batch.", label, registry=r
        )
        self._waiting = Gauge(
            "vllm:num_requests_waiting", "Requests waiting to be scheduled.", label, registry=r
        )
        self._kv = Gauge(
            "vllm:kv_cache_usage_perc", "KV cache usage; 1 means 100 percent.", label, registry=r
        )
        self._ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            label,
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self._e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency.",
            label,
            buckets=_E2E_BUCKETS,
            registry=r,
        )
        self._prompt = Counter("vllm:prompt_tokens", "Prefill tokens processed.", label, registry=r)
        self._generation = Counter(
            "vllm:generation_tokens", "Generation tokens processed.", label, registry=r
        )
        self._success = Counter(
            "vllm:request_success",
            "Successfully finished requests.",
            [*label, "finished_reason"],
            registry=r,
        )
        self._model = model_name

    def set_load(self, *, running: int, waiting: int, kv_usage: float) -> None:
        self._running.labels(self._model).set(running)
        self._waiting.labels(self._model).set(waiting)
        self._kv.labels(self._model).set(kv_usage)

    def observe_first_token(self, seconds: float) -> None:
        self._ttft.labels(self._model).observe(seconds)

    def observe_finished(
        self, *, seconds: float, prompt_tokens: int, generation_tokens: int, finish_reason: str
    ) -> None:
        self._e2e.labels(self._model).observe(seconds)
        self._prompt.labels(self._model).inc(prompt_tokens)
        self._generation.labels(self._model).inc(generation_tokens)
        self._success.labels(self._model, finish_reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

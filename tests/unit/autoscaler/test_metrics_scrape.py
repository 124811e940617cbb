"""Scraping a pool's load: the parsers on real exposition text, and the fetcher against real
HTTP servers on loopback (aiohttp) serving router and engine metrics."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from nemotron_operator.autoscaler.metrics_scrape import (
    HttpMetricsFetcher,
    MetricsParseError,
    PoolTargets,
    engine_sample,
    router_sample,
)


def router_text(
    queue: dict[str, float], inflight: dict[str, float], completed: dict[str, float] | None = None
) -> str:
    reg = CollectorRegistry()
    if completed is not None:
        c = Counter("nemotron_router_requests", "done", ["pool", "code"], registry=reg)
        for pool, v in completed.items():
            c.labels(pool=pool, code="200").inc(v - 1)
            c.labels(pool=pool, code="429").inc(1)
    q = Gauge("nemotron_router_queue_depth", "queue", ["pool"], registry=reg)
    f = Gauge("nemotron_router_inflight_requests", "inflight", ["pool"], registry=reg)
    for pool, v in queue.items():
        q.labels(pool=pool).set(v)
    for pool, v in inflight.items():
        f.labels(pool=pool).set(v)
    return generate_latest(reg).decode()


ENGINE_TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="nano"} 7.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="nano"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="nano"} 0.5
"""


def test_router_sample_filters_pool() -> None:
    text = router_text({"on": 5, "off": 2}, {"on": 9, "off": 1})
    assert router_sample(text, "on").queue == 5
    assert router_sample(text, "on").inflight == 9
    assert router_sample(text, "off").queue == 2


def test_router_sample_reads_the_completed_counter_over_codes() -> None:
    text = router_text({"on": 0}, {"on": 0}, {"on": 10, "off": 3})
    assert router_sample(text, "on").completed == 10
    assert router_sample(router_text({"on": 0}, {"on": 0}), "on").completed is None


def test_router_sample_pool_not_seen_yet_is_zero_but_missing_family_is_an_error() -> None:
    text = router_text({"off": 2}, {"off": 1})
    assert router_sample(text, "on").queue == 0
    with pytest.raises(MetricsParseError):
        router_sample(ENGINE_TEXT, "on")


def test_engine_sample_reads_vllm_names() -> None:
    sample = engine_sample(ENGINE_TEXT)
    assert (sample.waiting, sample.running) == (3.0, 7.0)
    with pytest.raises(MetricsParseError):
        engine_sample(router_text({}, {}))
    with pytest.raises(MetricsParseError):
        engine_sample("this is { not prometheus")


Serve = Callable[[str, int], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start loopback servers: ``serve(body, status)`` returns the URL of its /metrics."""
    runners: list[web.AppRunner] = []

    async def start(body: str, status: int) -> str:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text=body, status=status, content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/metrics"

    yield start
    for runner in runners:
        await runner.cleanup()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


async def test_fetch_sums_router_replicas_and_engines(serve: Serve) -> None:
    r1 = await serve(router_text({"on": 5}, {"on": 4}, {"on": 7}), 200)
    r2 = await serve(router_text({"on": 1}, {"on": 2}, {"on": 5}), 200)
    e1 = await serve(ENGINE_TEXT, 200)
    e2 = await serve(ENGINE_TEXT, 200)
    async with httpx.AsyncClient() as client:
        fetch = HttpMetricsFetcher(client, timeout_s=2)
        sig = await fetch(targets=PoolTargets((r1, r2), (e1, e2)), pool="on")
    assert sig.complete
    assert (sig.router_queue, sig.router_inflight) == (6, 6)
    assert (sig.engine_waiting, sig.engine_running, sig.ready_engines) == (6, 14, 2)
    assert sig.completed_total == 12


async def test_failed_scrapes_make_signals_incomplete(serve: Serve) -> None:
    good_router = await serve(router_text({"on": 5}, {"on": 4}), 200)
    broken_engine = await serve("oops", 500)
    garbage_router = await serve("not { prometheus", 200)
    async with httpx.AsyncClient() as client:
        fetch = HttpMetricsFetcher(client, timeout_s=2)
        a = await fetch(targets=PoolTargets((good_router,), (broken_engine,)), pool="on")
        b = await fetch(targets=PoolTargets((good_router, garbage_router), ()), pool="on")
        c = await fetch(targets=PoolTargets((closed_port_url(),), ()), pool="on")
        d = await fetch(targets=PoolTargets((), ()), pool="on")
    assert not a.complete
    assert a.router_queue == 5  # what did arrive is kept (it can still wake a pool at zero)
    assert not b.complete
    assert not c.complete
    assert not d.complete  # no router pod at all: the queue is unknown


def test_parses_what_the_router_and_the_engine_emulator_expose() -> None:
    """The contract (docs/contracts.md) checked against the real exporters of both parts."""
    from nemotron_operator.engine.emulator.metrics import EngineMetrics
    from nemotron_operator.router.metrics import RouterMetrics

    router = RouterMetrics(
        queue_depth=lambda: {"on": 3.0, "off": 0.0},
        inflight=lambda: {"on": 8.0, "off": 1.0},
        endpoints=lambda: {"on": 2.0, "off": 1.0},
    )
    for _ in range(5):
        router.request("on", 200)
    router.request("on", 429)
    router.request("off", 200)
    sample = router_sample(router.render().decode(), "on")
    assert (sample.queue, sample.inflight, sample.completed) == (3.0, 8.0, 6.0)

    engine = EngineMetrics("nano")
    engine.set_load(running=5, waiting=2, kv_usage=0.3)
    got = engine_sample(engine.render().decode())
    assert (got.waiting, got.running) == (2.0, 5.0)


async def test_loop_over_real_metric_endpoints(serve: Serve) -> None:
    """``autoscale_once`` with the real HTTP fetcher against loopback router/engine pods."""
    from nemotron_operator.autoscaler.loop import autoscale_once
    from nemotron_operator.autoscaler.settings import PolicySettings

    router = await serve(router_text({"on": 30}, {"on": 20}, {"on": 100}), 200)
    engine = await serve(ENGINE_TEXT.replace("} 3.0", "} 10.0"), 200)
    writes: list[int] = []
    saved: dict[str, object] = {}

    class Io:
        async def __call__(self, *, namespace: str, name: str, pool: str) -> PoolTargets:
            return PoolTargets((router,), (engine,))

        async def get_replicas(self, *, namespace: str, deployment: str) -> int:
            return 1

        async def set_replicas(self, *, namespace: str, deployment: str, replicas: int) -> None:
            writes.append(replicas)

        async def load(self, *, namespace: str, name: str, pool: str) -> None:
            return None

        async def save(self, *, namespace: str, name: str, pool: str, state: object) -> None:
            saved[pool] = state

    io = Io()
    async with httpx.AsyncClient() as client:
        [out] = await autoscale_once(
            namespace="ai",
            name="nano",
            pools={"on": PolicySettings(min_replicas=0, max_replicas=8, slots_per_replica=7)},
            targets=io,
            fetch=HttpMetricsFetcher(client, timeout_s=2),
            scaler=io,
            store=io,
            now=1000.0,
        )
    # queue 30 + 10 waiting, demand 30 + max(20, 7 + 10) = 50 -> ceil(50 / (7 + 4)) = 5
    assert out.desired == 5
    assert writes == [5]
    assert out.reason.startswith("scale up")
    assert "on" in saved

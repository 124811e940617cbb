"""Reading a pool's load from the router's and the engines' ``/metrics`` (Prometheus text).

Pure parsers (``router_sample``, ``engine_sample``) over ``prometheus_client``'s text parser,
and ``HttpMetricsFetcher``, the one place that fetches over HTTP (httpx, short timeouts). It
turns a pool's ``loop.PoolTargets`` into ``policy.PoolSignals``. A failed or unreadable scrape
is not zero load: it marks the signals incomplete and the policy holds.
Metric names are those of docs/contracts.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from nemotron_operator.autoscaler.policy import PoolSignals

__all__ = [
    "ENGINE_RUNNING",
    "ENGINE_WAITING",
    "ROUTER_COMPLETED",
    "ROUTER_INFLIGHT",
    "ROUTER_QUEUE",
    "EngineSample",
    "HttpMetricsFetcher",
    "MetricsParseError",
    "PoolTargets",
    "RouterSample",
    "engine_sample",
    "router_sample",
    "signals_from_samples",
]

ROUTER_QUEUE = "nemotron_router_queue_depth"
ROUTER_INFLIGHT = "nemotron_router_inflight_requests"
# Counter of finished requests (any code): the policy derives arrival and service rates from it.
ROUTER_COMPLETED = "nemotron_router_requests_total"
ENGINE_WAITING = "vllm:num_requests_waiting"
ENGINE_RUNNING = "vllm:num_requests_running"


class MetricsParseError(ValueError):
    """The text is not Prometheus exposition, or lacks the metric families we read."""


@dataclass(frozen=True)
class PoolTargets:
    """Where to read one pool's load: every router pod and every ready engine pod of the pool."""

    router_urls: tuple[str, ...]
    engine_urls: tuple[str, ...]


@dataclass(frozen=True)
class RouterSample:
    queue: float
    inflight: float
    completed: float | None = None  # None: the router does not expose the counter


@dataclass(frozen=True)
class EngineSample:
    waiting: float
    running: float


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by sample name (a counter's family ``x`` holds samples ``x_total``)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    try:
        for family in text_string_to_metric_families(text):
            out.setdefault(family.name, [])
            for sample in family.samples:
                if sample.name != family.name:
                    out.setdefault(sample.name, []).append(
                        (dict(sample.labels), float(sample.value))
                    )
                else:
                    out[family.name].append((dict(sample.labels), float(sample.value)))
        return out
    except (ValueError, TypeError, IndexError) as exc:
        raise MetricsParseError(f"not Prometheus text: {exc}") from exc


def _require(families: dict[str, list[tuple[dict[str, str], float]]], name: str) -> None:
    if name not in families:
        raise MetricsParseError(f"metric {name!r} missing")


def router_sample(text: str, pool: str) -> RouterSample:
    """The pool's queue depth and in-flight requests from one router pod's metrics.

    The families must be present (else this is not our router); a pool without a sample yet
    (no request seen for it) counts 0.
    """
    families = _families(text)
    _require(families, ROUTER_QUEUE)
    _require(families, ROUTER_INFLIGHT)

    def pool_sum(name: str) -> float:
        return sum(v for labels, v in families[name] if labels.get("pool") == pool)

    return RouterSample(
        queue=pool_sum(ROUTER_QUEUE),
        inflight=pool_sum(ROUTER_INFLIGHT),
        completed=pool_sum(ROUTER_COMPLETED) if ROUTER_COMPLETED in families else None,
    )


def engine_sample(text: str) -> EngineSample:
    """Waiting and running requests of one engine (summed over its ``model_name`` labels)."""
    families = _families(text)
    _require(families, ENGINE_WAITING)
    _require(families, ENGINE_RUNNING)
    return EngineSample(
        waiting=sum(v for _, v in families[ENGINE_WAITING]),
        running=sum(v for _, v in families[ENGINE_RUNNING]),
    )


def signals_from_samples(
    *,
    routers: Sequence[RouterSample | None],
    engines: Sequence[EngineSample | None],
) -> PoolSignals:
    """Sum the samples of one pool; ``None`` is a failed scrape (the signals are incomplete)."""
    got_routers = [r for r in routers if r is not None]
    got_engines = [e for e in engines if e is not None]
    complete = (
        bool(routers) and len(got_routers) == len(routers) and len(got_engines) == len(engines)
    )
    counters = [r.completed for r in got_routers]
    completed = (
        sum(c for c in counters if c is not None)
        if complete and all(c is not None for c in counters)
        else None
    )
    return PoolSignals(
        completed_total=completed,
        router_queue=sum(r.queue for r in got_routers),
        router_inflight=sum(r.inflight for r in got_routers),
        engine_waiting=sum(e.waiting for e in got_engines),
        engine_running=sum(e.running for e in got_engines),
        ready_engines=len(engines),
        complete=complete,
    )


class HttpMetricsFetcher:
    """Scrapes a pool's router and engine pods concurrently with one shared httpx client."""

    def __init__(self, client: httpx.AsyncClient, *, timeout_s: float = 2.0) -> None:
        self._client = client
        self._timeout = timeout_s

    async def _text(self, url: str) -> str | None:
        try:
            response = await self._client.get(url, timeout=self._timeout)
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        return response.text

    async def _router(self, url: str, pool: str) -> RouterSample | None:
        text = await self._text(url)
        try:
            return None if text is None else router_sample(text, pool)
        except MetricsParseError:
            return None

    async def _engine(self, url: str) -> EngineSample | None:
        text = await self._text(url)
        try:
            return None if text is None else engine_sample(text)
        except MetricsParseError:
            return None

    async def __call__(self, *, targets: PoolTargets, pool: str) -> PoolSignals:
        routers = await asyncio.gather(*(self._router(u, pool) for u in targets.router_urls))
        engines = await asyncio.gather(*(self._engine(u) for u in targets.engine_urls))
        return signals_from_samples(routers=routers, engines=engines)

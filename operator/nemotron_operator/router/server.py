"""The router's request handling and its lifecycle.

``Router`` holds the live state (config, pools, upstream client, metrics, API keys) and the
background tasks (endpoint discovery per pool, engine-metrics scrape, config reload);
``Router.handle`` is the ``httpserver`` handler. The request path: ``auth`` ->
``requestbody`` -> ``mode`` -> ``policy`` -> ``pools`` (admission, balancing) -> ``upstream``
(forward, stream, retry), metered in ``metrics``. Every failure is a ``errors.RouterError``
rendered once, in ``handle``.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health (live),
GET /ready (config loaded, not draining), GET /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from nemotron_operator.api.routerconfig import PoolRoute, RouterConfig
from nemotron_operator.router.auth import KeyRing, load_keys
from nemotron_operator.router.configfile import config_digest, load_config
from nemotron_operator.router.endpoints import PodWatch
from nemotron_operator.router.enginemetrics import parse_engine_metrics
from nemotron_operator.router.errors import RouterError
from nemotron_operator.router.httpserver import Request, Responder
from nemotron_operator.router.kubeapi import KubeAccess, load_kube_access
from nemotron_operator.router.metrics import RouterMetrics
from nemotron_operator.router.mode import MODE_HEADER, classify_mode, with_mode_toggle
from nemotron_operator.router.policy import apply_policy
from nemotron_operator.router.pools import Loan, Pool
from nemotron_operator.router.requestbody import Endpoint, check_size, encode_body, parse_request
from nemotron_operator.router.upstream import forward
from nemotron_operator.router.upstreamclient import UpstreamClient, UpstreamError

__all__ = ["Router"]

log = logging.getLogger(__name__)

SCRAPE_INTERVAL = 1.0
CONFIG_POLL_INTERVAL = 2.0


def _discovery_key(route: PoolRoute) -> tuple[object, ...]:
    return (route.namespace, route.label_selector, route.port, route.static_endpoints)


class Router:
    def __init__(
        self,
        config: RouterConfig,
        *,
        config_path: str | Path | None = None,
        kube_access: Callable[[], KubeAccess] = load_kube_access,
        scrape_interval: float = SCRAPE_INTERVAL,
        config_poll_interval: float = CONFIG_POLL_INTERVAL,
    ) -> None:
        self.config = config
        self._config_path = Path(config_path) if config_path else None
        self._config_digest = config_digest(self._config_path) if self._config_path else ""
        self._kube_access = kube_access
        self._scrape_interval = scrape_interval
        self._config_poll_interval = config_poll_interval
        self.reload_failures = 0
        self.pools: dict[str, Pool] = {}
        self._watches: dict[str, PodWatch] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._client: UpstreamClient | None = None
        self._keys = KeyRing(None)
        self.draining = False
        self.active = 0  # handlers running; the drain waits for it to reach 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.metrics = RouterMetrics(
            queue_depth=lambda: {n: float(len(p.queue)) for n, p in self.pools.items()},
            inflight=lambda: {n: float(p.inflight) for n, p in self.pools.items()},
            endpoints=lambda: {n: float(len(p.endpoints)) for n, p in self.pools.items()},
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def client(self) -> UpstreamClient:
        assert self._client is not None, "Router.start() not called"
        return self._client

    async def start(self) -> None:
        # One client with pooled keep-alive connections for all engine traffic; no connection
        # cap (the admission queue is the cap); bytes pass through unchanged.
        self._client = UpstreamClient()
        await self._apply(self.config)
        self._tasks.append(asyncio.create_task(self._scrape_loop(), name="engine-scrape"))
        if self._config_path is not None:
            self._tasks.append(asyncio.create_task(self._reload_loop(), name="config-reload"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for watch in self._watches.values():
            await watch.stop()
        self._watches.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _apply(self, config: RouterConfig) -> None:
        """Make the live state match ``config`` (first start and every reload)."""
        old_routes = {name: pool.route for name, pool in self.pools.items()}
        self.config = config
        self._keys = KeyRing(load_keys(config.api_keys_dir) if config.api_keys_dir else None)
        self.metrics.generation.set(config.generation)
        wanted = {route.name: route for route in config.pools if route.enabled}
        for name in list(self.pools):
            if name not in wanted:
                await self._stop_watch(name)
                del self.pools[name]
        for name, route in wanted.items():
            pool = self.pools.get(name)
            if pool is None:
                pool = self.pools[name] = Pool(route)
            pool.route = route
            old = old_routes.get(name)
            if old is None or _discovery_key(old) != _discovery_key(route):
                await self._stop_watch(name)
                self._start_discovery(pool)
            pool.queue.wake()  # a larger cap may free slots

    def _start_discovery(self, pool: Pool) -> None:
        route = pool.route
        if route.static_endpoints:
            pool.set_endpoints(e.url.rstrip("/") for e in route.static_endpoints)
            return
        if not route.label_selector:
            # An empty selector would match every pod in the namespace: serve nothing instead.
            log.warning("pool %s has neither static endpoints nor a label selector", pool.name)
            pool.set_endpoints(())
            return
        watch = PodWatch(
            self._kube_access(),
            namespace=route.namespace,
            label_selector=route.label_selector,
            port=route.port,
            on_change=pool.set_endpoints,
        )
        self._watches[pool.name] = watch
        watch.start()

    async def _stop_watch(self, name: str) -> None:
        watch = self._watches.pop(name, None)
        if watch is not None:
            await watch.stop()

    async def _reload_loop(self) -> None:
        assert self._config_path is not None
        while True:
            await asyncio.sleep(self._config_poll_interval)
            try:
                digest = config_digest(self._config_path)
                if digest != self._config_digest:
                    config = load_config(self._config_path)
                    await self._apply(config)
                    self._config_digest = digest
                    log.info("config generation %d applied", config.generation)
                elif self.config.api_keys_dir:
                    self._keys = KeyRing(load_keys(self.config.api_keys_dir))
            except Exception:  # keep serving with the last good config
                self.reload_failures += 1
                log.exception("config reload failed; keeping generation %d", self.config.generation)

    async def _scrape_loop(self) -> None:
        while True:
            jobs = [
                self._scrape(pool, url) for pool in self.pools.values() for url in pool.endpoints
            ]
            if jobs:
                await asyncio.gather(*jobs)
            await asyncio.sleep(self._scrape_interval)

    async def _scrape(self, pool: Pool, url: str) -> None:
        try:
            async with asyncio.timeout(self._scrape_interval):
                status, body = await self.client.get(url, "/metrics")
            if status != 200:
                return
            text = body.decode()
        except (UpstreamError, TimeoutError, UnicodeDecodeError):
            return  # keep the last numbers; the balancer still has its own counts
        pool.set_engine_load(url, parse_engine_metrics(text))

    # -- HTTP ---------------------------------------------------------------------------------

    async def handle(self, request: Request, out: Responder) -> None:
        """The ``httpserver`` handler: route, answer, and render any ``RouterError``."""
        self.active += 1
        self.idle.clear()
        try:
            path = request.path.partition("?")[0]
            route = _ROUTES.get(path)
            if route is None:
                raise RouterError(404, f"no route {request.path!r}", code="not_found")
            method, endpoint = route
            if request.method != method:
                raise RouterError(
                    405, f"use {method} for {request.path}", code="method_not_allowed"
                )
            # The engine serves the same paths as the router (vLLM's OpenAI server).
            if endpoint == "chat":
                await self._complete(request, out, "chat", path)
            elif endpoint == "completions":
                await self._complete(request, out, "completions", path)
            else:
                self._simple(request, out, endpoint)
        except RouterError as exc:
            if not out.started:
                out.send(exc.status, exc.body(), _header_pairs(exc.headers()))
        finally:
            self.active -= 1
            if self.active == 0:
                self.idle.set()

    async def _complete(
        self, request: Request, out: Responder, endpoint: Endpoint, path: str
    ) -> None:
        started = time.monotonic()
        config = self.config
        pool_name = "-"
        status = 500
        try:
            self._keys.check(request.header(b"authorization"))
            check_size(request.too_large, config.max_body_bytes)
            body = parse_request(request.body, endpoint, config.served_model_name)
            choice = classify_mode(
                body, header=request.header(_MODE_HEADER), default=config.default_mode
            )
            pool = self.pools.get(choice.mode)
            if pool is None:
                raise RouterError(
                    400,
                    f"reasoning mode {choice.mode!r} is not served by this deployment",
                    code="mode_not_served",
                    param="reasoning",
                )
            pool_name = pool.name
            body = apply_policy(with_mode_toggle(body, choice), pool.route, choice.mode)
            slots: Pool | Loan = pool
            if config.lend_idle_capacity:
                loan = self._borrow(pool)
                if loan is not None:
                    slots = loan
                    self.metrics.lent(pool.name, loan.name)
            status = await forward(
                out,
                client=self.client,
                request_headers=request.raw_headers,
                pool=slots,
                path=path,
                body=encode_body(body),
                stream=bool(body.get("stream")),
                metrics=self.metrics,
                max_retries=config.max_retries,
                deadline_seconds=config.request_timeout_seconds,
                started=started,
            )
        except RouterError as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # client closed the request (nginx's convention)
            raise
        finally:
            self.metrics.request(pool_name, status)
            if pool_name != "-":
                self.metrics.duration(pool_name, time.monotonic() - started)

    def _borrow(self, pool: Pool) -> Loan | None:
        """A slot on the other pool's engines when ``pool`` is saturated and they are idle."""
        other = self.pools.get("on" if pool.name == "off" else "off")
        if other is None or not _fits(pool.route, other.route) or not pool.is_saturated():
            return None
        return other.lend()

    def _simple(self, request: Request, out: Responder, endpoint: str) -> None:
        if endpoint == "models":
            self._keys.check(request.header(b"authorization"))
            model = {
                "id": self.config.served_model_name,
                "object": "model",
                "created": 0,
                "owned_by": "nemotron-operator",
            }
            out.send(200, orjson.dumps({"object": "list", "data": [model]}))
        elif endpoint == "health":
            out.send(200, b'{"status":"ok"}')
        elif endpoint == "ready":
            if self.draining:
                out.send(503, b'{"status":"draining"}')
            else:
                endpoints = {n: len(p.endpoints) for n, p in self.pools.items()}
                out.send(200, orjson.dumps({"status": "ready", "endpoints": endpoints}))
        else:
            out.send(200, self.metrics.render(), content_type=_METRICS_TYPE)


_MODE_HEADER = MODE_HEADER.lower().encode()
_METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_ROUTES: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("POST", "chat"),
    "/v1/completions": ("POST", "completions"),
    "/v1/models": ("GET", "models"),
    "/health": ("GET", "health"),
    "/ready": ("GET", "ready"),
    "/metrics": ("GET", "metrics"),
}


def _fits(borrower: PoolRoute, lender: PoolRoute) -> bool:
    """Whether every request that fits the borrower's engines fits the lender's."""
    if borrower.max_model_len is None or lender.max_model_len is None:
        return borrower.max_model_len == lender.max_model_len  # both the model's default
    return lender.max_model_len >= borrower.max_model_len


def _header_pairs(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    # Content-Type is written by the responder itself.
    return [(k.encode(), v.encode()) for k, v in headers.items() if k.lower() != "content-type"]

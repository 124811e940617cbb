"""The router's aiohttp application and its lifecycle.

``Router`` holds the live state (config, pools, upstream session, metrics, API keys) and the
background tasks (endpoint discovery per pool, engine-metrics scrape, config reload). The
request path: ``auth`` -> ``requestbody`` -> ``mode`` -> ``policy`` -> ``pools`` (admission,
balancing) -> ``upstream`` (forward, stream, retry), metered in ``metrics``. Every failure is
a ``errors.RouterError`` rendered once by the error middleware.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health (live),
GET /ready (config loaded, not draining), GET /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from nemotron_operator.api.routerconfig import PoolRoute, RouterConfig
from nemotron_operator.router.auth import KeyRing, load_keys
from nemotron_operator.router.configfile import config_digest, load_config
from nemotron_operator.router.endpoints import PodWatch
from nemotron_operator.router.enginemetrics import parse_engine_metrics
from nemotron_operator.router.errors import RouterError
from nemotron_operator.router.kubeapi import KubeAccess, load_kube_access
from nemotron_operator.router.metrics import RouterMetrics
from nemotron_operator.router.mode import MODE_HEADER, classify_mode, with_mode_toggle
from nemotron_operator.router.policy import apply_policy
from nemotron_operator.router.pools import Pool
from nemotron_operator.router.requestbody import Endpoint, encode_body, parse_request, read_body
from nemotron_operator.router.upstream import forward

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
        self._session: aiohttp.ClientSession | None = None
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
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Router.start() not called"
        return self._session

    async def start(self) -> None:
        # One pooled session with keep-alive for all engine traffic; no connection cap (the
        # admission queue is the cap), no decompression (bytes pass through unchanged).
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
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
        if self._session is not None:
            await self._session.close()
            self._session = None

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
            async with self.session.get(
                url + "/metrics", timeout=aiohttp.ClientTimeout(total=self._scrape_interval)
            ) as response:
                if response.status != 200:
                    return
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return  # keep the last numbers; the balancer still has its own counts
        pool.set_engine_load(url, parse_engine_metrics(text))

    # -- HTTP ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=2**31)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        return app

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.active += 1
        self.idle.clear()
        try:
            response = await handler(request)
        except RouterError as exc:
            response = web.Response(status=exc.status, body=exc.body(), headers=exc.headers())
        except web.HTTPException as exc:
            error = RouterError(exc.status, exc.reason, type_="invalid_request_error")
            response = web.Response(status=exc.status, body=error.body(), headers=error.headers())
        finally:
            self.active -= 1
            if self.active == 0:
                self.idle.set()
        if self.draining:
            response.force_close()  # send the client's next request to another replica
        return response

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "chat", "/v1/chat/completions")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "completions", "/v1/completions")

    async def _complete(
        self, request: web.Request, endpoint: Endpoint, path: str
    ) -> web.StreamResponse:
        started = time.monotonic()
        config = self.config
        pool_name = "-"
        status = 500
        try:
            self._keys.check(request.headers.get("Authorization"))
            raw = await read_body(request, config.max_body_bytes)
            body = parse_request(raw, endpoint, config.served_model_name)
            choice = classify_mode(
                body, header=request.headers.get(MODE_HEADER), default=config.default_mode
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
            response = await forward(
                request,
                session=self.session,
                pool=pool,
                path=path,
                body=encode_body(body),
                stream=bool(body.get("stream")),
                metrics=self.metrics,
                max_retries=config.max_retries,
                deadline_seconds=config.request_timeout_seconds,
                started=started,
            )
            status = response.status
            return response
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

    async def _models(self, request: web.Request) -> web.Response:
        self._keys.check(request.headers.get("Authorization"))
        model = {
            "id": self.config.served_model_name,
            "object": "model",
            "created": 0,
            "owned_by": "nemotron-operator",
        }
        return web.json_response({"object": "list", "data": [model]})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response(
            {"status": "ready", "endpoints": {n: len(p.endpoints) for n, p in self.pools.items()}}
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

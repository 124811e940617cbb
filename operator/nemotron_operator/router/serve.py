"""Running a ``server.Router`` on a socket until SIGTERM/SIGINT, then draining: readiness turns
503, the listener closes (no new connections), in-flight requests and streams finish up to
the drain deadline, then everything stops. Used by ``cli`` (the ``router`` subcommand) and by
tests that want a router on a real loopback socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
from collections.abc import AsyncIterator

from nemotron_operator.router.httpserver import HttpServer
from nemotron_operator.router.server import Router

__all__ = ["drain_and_stop", "raise_open_files_limit", "running_router", "serve_forever"]

log = logging.getLogger(__name__)


def raise_open_files_limit() -> None:
    """Thousands of streams need two sockets each; lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.asynccontextmanager
async def running_router(
    router: Router, *, host: str, port: int, drain_seconds: float = 30.0
) -> AsyncIterator[tuple[HttpServer, int]]:
    """Start ``router`` listening on host:port (0 = any free port); yield (server, port)."""
    try:
        await router.start()
    except BaseException:
        await router.stop()
        raise
    server = HttpServer(router.handle, body_limit=lambda: router.config.max_body_bytes)
    try:
        bound = await server.start(host, port)
        yield server, bound
    finally:
        await drain_and_stop(router, server, drain_seconds=drain_seconds)


async def drain_and_stop(router: Router, server: HttpServer, *, drain_seconds: float) -> None:
    if not router.draining:
        router.draining = True
        await server.stop_listening()
        try:
            async with asyncio.timeout(drain_seconds):
                await router.idle.wait()
        except TimeoutError:
            log.warning("drain deadline passed with %d requests in flight", router.active)
    await server.close()
    await router.stop()


async def serve_forever(router: Router, *, host: str, port: int, drain_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_router(router, host=host, port=port, drain_seconds=drain_seconds) as (
        _,
        bound,
    ):
        log.info("router listening on %s:%d", host, bound)
        await stop.wait()
        log.info("stopping: draining in-flight requests for up to %.0fs", drain_seconds)

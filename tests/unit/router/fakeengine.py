"""A scriptable OpenAI-shaped engine on a loopback socket, for router tests that need faults
the emulator does not make on demand (a 500 on one endpoint only, a stream that waits for the
test, a connection dropped mid-stream) and to observe what the router forwarded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["FakeEngine", "fake_engine"]


@dataclass
class FakeEngine:
    url: str = ""
    behaviour: str = "ok"  # ok | error500 | drop | slow | break_stream
    chunks: int = 3
    received: list[dict[str, Any]] = field(default_factory=list)
    release_stream: asyncio.Event = field(default_factory=asyncio.Event)
    hold_stream: bool = False
    cancelled: int = 0
    waiting: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        if self.behaviour == "error500":
            return web.json_response(
                {"error": {"message": "boom", "type": "x", "param": None, "code": 500}}, status=500
            )
        if self.behaviour == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        try:
            if self.behaviour == "slow":
                await asyncio.sleep(30)
            if not body.get("stream"):
                return web.json_response(
                    {"id": "x", "object": "chat.completion", "echo": body},
                    headers={"X-Engine": self.url},
                )
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for i in range(self.chunks):
                await response.write(f"data: {json.dumps({'i': i})}\n\n".encode())
                if i == 0 and self.hold_stream:
                    await self.release_stream.wait()
                if i == 1 and self.behaviour == "break_stream":
                    assert request.transport is not None
                    request.transport.abort()
                    return response
            await response.write(b"data: [DONE]\n\n")
            return response
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=f"vllm:num_requests_waiting {self.waiting}\n")


@asynccontextmanager
async def fake_engine(**kwargs: Any) -> AsyncIterator[FakeEngine]:
    engine = FakeEngine(**kwargs)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", engine.handle)
    app.router.add_post("/v1/completions", engine.handle)
    app.router.add_get("/metrics", engine.metrics)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    engine.url = f"http://127.0.0.1:{port}"
    try:
        yield engine
    finally:
        engine.release_stream.set()
        await runner.cleanup()

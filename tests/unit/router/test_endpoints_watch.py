"""The pod watch adapter (router.endpoints.PodWatch) against a fake API server on a loopback
socket: list then watch, re-list on 410 Gone, the last known set kept while the API is down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from nemotron_operator.router import endpoints
from nemotron_operator.router.endpoints import PodWatch
from nemotron_operator.router.kubeapi import KubeAccess
from tests.support.waiting import await_for


def pod(name: str, ip: str, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": "5"},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


class FakeApi:
    def __init__(self) -> None:
        self.pods: list[dict[str, Any]] = []
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.down = False
        self.lists = 0
        self.selectors: list[str] = []
        self.auth: list[str] = []

    async def pods_handler(self, request: web.Request) -> web.StreamResponse:
        self.auth.append(request.headers.get("Authorization", ""))
        self.selectors.append(request.query.get("labelSelector", ""))
        if self.down:
            return web.Response(status=503, text="apiserver down")
        if request.query.get("watch") != "1":
            self.lists += 1
            return web.json_response(
                {"items": self.pods, "metadata": {"resourceVersion": str(10 + self.lists)}}
            )
        response = web.StreamResponse()
        await response.prepare(request)
        while True:
            event = await self.events.get()
            if event is None:  # end this watch (as a timeout would)
                return response
            await response.write(json.dumps(event).encode() + b"\n")


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/pool-ns/pods", fake.pods_handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        fake.events.put_nowait(None)
        await runner.cleanup()


async def test_list_watch_relist_and_outage(
    api: tuple[FakeApi, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoints, "RETRY_SECONDS", 0.05)
    fake, server = api
    fake.pods = [pod("a", "10.1.0.1"), pod("x", "10.1.0.9", ready=False)]
    changes: list[list[str]] = []
    watch = PodWatch(
        KubeAccess(server=server, ssl_context=False, token="tok"),
        namespace="pool-ns",
        label_selector="serving.nemotron.dev/pool=on",
        port=8000,
        on_change=changes.append,
    )

    async def urls_are(expected: list[str]) -> None:
        async def check() -> bool:
            return watch.urls == expected

        await await_for(check, 5, what=f"urls == {expected}")

    watch.start()
    try:
        await urls_are(["http://10.1.0.1:8000"])
        assert fake.auth[0] == "Bearer tok"
        assert fake.selectors[0] == "serving.nemotron.dev/pool=on"
        await fake.events.put({"type": "ADDED", "object": pod("b", "10.1.0.2")})
        await urls_are(["http://10.1.0.1:8000", "http://10.1.0.2:8000"])
        await fake.events.put(
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}
        )
        # 410 Gone: the watch is too old; the watcher lists again and sees the new state.
        fake.pods = [pod("b", "10.1.0.2")]
        await fake.events.put({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
        await urls_are(["http://10.1.0.2:8000"])
        assert fake.lists == 2
        # The API goes away: the watch ends, re-listing fails; the last set stays in use.
        fake.down = True
        await fake.events.put(None)
        failed_before = len(fake.auth)

        async def retried() -> bool:
            return len(fake.auth) >= failed_before + 3

        await await_for(retried, 5, what="several failed re-lists")
        assert watch.urls == ["http://10.1.0.2:8000"]
        fake.pods = [pod("b", "10.1.0.2"), pod("c", "10.1.0.3")]
        fake.down = False
        await urls_are(["http://10.1.0.2:8000", "http://10.1.0.3:8000"])
        assert [] not in changes  # never published an empty set during the outage
    finally:
        await watch.stop()

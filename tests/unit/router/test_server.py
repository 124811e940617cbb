"""The router over real loopback sockets against scriptable fake engines: forwarding, policy
on the wire, streaming without buffering, retries, cancellation, errors, metrics, drain."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nemotron_operator.api.routerconfig import PoolRoute, RouterConfig, StaticEndpoint
from nemotron_operator.router.balancer import LEND_MAX, LEND_QUIET_SCRAPES
from nemotron_operator.router.serve import running_router
from nemotron_operator.router.server import Router
from tests.support.waiting import await_for
from tests.unit.router.fakeengine import FakeEngine, fake_engine

MODEL = "nano-4b"


def config(on: list[str], off: list[str], **extra: Any) -> RouterConfig:
    def pool(name: str, urls: list[str], **route: Any) -> PoolRoute:
        fields: dict[str, Any] = {
            "temperature": 0.6 if name == "on" else 0.0,
            "top_p": 0.95 if name == "on" else 1.0,
            "max_tokens": 1000 if name == "on" else 100,
            **route,
        }
        return PoolRoute(
            name=name,  # type: ignore[arg-type]
            static_endpoints=tuple(StaticEndpoint(url=u) for u in urls),
            **fields,
        )

    pool_extra = extra.pop("pool", {})
    return RouterConfig(
        served_model_name=MODEL,
        pools=(pool("on", on, **pool_extra), pool("off", off, **pool_extra)),
        **extra,
    )


@asynccontextmanager
async def router_at(cfg: RouterConfig, **kw: Any) -> AsyncIterator[tuple[Router, str]]:
    router = Router(cfg, **kw)
    async with running_router(router, host="127.0.0.1", port=0, drain_seconds=5) as (_, port):
        yield router, f"http://127.0.0.1:{port}"


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_forwards_with_policy_and_mode(http: aiohttp.ClientSession) -> None:
    async with (
        fake_engine() as on,
        fake_engine() as off,
        router_at(config([on.url], [off.url])) as (_, base),
    ):
        async with http.post(base + "/v1/chat/completions", json=chat()) as r:
            assert r.status == 200
            assert r.headers["X-Engine"] == off.url  # upstream headers pass through
        sent = off.received[-1]
        assert sent["temperature"] == 0.0
        assert sent["max_tokens"] == 100
        assert sent["messages"][0] == {"role": "system", "content": "detailed thinking off"}
        async with http.post(
            base + "/v1/chat/completions",
            json=chat(temperature=0, max_tokens=5000),
            headers={"X-Reasoning-Mode": "on"},
        ) as r:
            assert r.status == 200
        sent = on.received[-1]
        assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.6, 0.95, 1000)
        async with http.post(
            base + "/v1/completions", json={"model": MODEL, "prompt": "x", "reasoning": "on"}
        ) as r:
            assert r.status == 200
        assert on.received[-1] == {
            "model": MODEL,
            "prompt": "x",
            "temperature": 0.6,
            "top_p": 0.95,
            "max_tokens": 1000,
        }


async def test_stream_is_passed_through_before_the_engine_finishes(
    http: aiohttp.ClientSession,
) -> None:
    async with fake_engine(hold_stream=True) as off, router_at(config([], [off.url])) as (_, base):
        async with http.post(base + "/v1/chat/completions", json=chat(stream=True)) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
            assert first == b'data: {"i": 0}\n\n'
            assert not off.release_stream.is_set()  # the engine is still holding the rest
            off.release_stream.set()
            rest = await r.read()
        assert rest.endswith(b"data: [DONE]\n\n")


async def test_connect_error_and_5xx_are_retried_elsewhere(http: aiohttp.ClientSession) -> None:
    async with (
        fake_engine(behaviour="error500") as bad,
        fake_engine() as good,
        router_at(config([], [bad.url, closed_port_url(), good.url], max_retries=2)) as (
            router,
            base,
        ),
    ):
        for _ in range(10):
            async with http.post(base + "/v1/chat/completions", json=chat()) as r:
                assert r.status == 200
        assert len(good.received) == 10
        text = router.metrics.render().decode()
        assert 'nemotron_router_retries_total{pool="off"}' in text
        assert 'nemotron_router_upstream_errors_total{pool="off"}' in text
        assert router.pools["off"].inflight == 0


async def test_5xx_is_returned_when_retries_run_out(http: aiohttp.ClientSession) -> None:
    async with (
        fake_engine(behaviour="error500") as bad,
        router_at(config([], [bad.url])) as (_, base),
        http.post(base + "/v1/chat/completions", json=chat()) as r,
    ):
        assert r.status == 500
        assert (await r.json())["error"]["message"] == "boom"
    async with (
        router_at(config([], [closed_port_url()])) as (_, base),
        http.post(base + "/v1/chat/completions", json=chat()) as r,
    ):
        assert r.status == 502
        assert (await r.json())["error"]["code"] == "upstream_unavailable"


async def test_no_retry_after_the_stream_started(http: aiohttp.ClientSession) -> None:
    async with fake_engine(behaviour="break_stream", chunks=5) as broken, fake_engine() as other:
        async with (
            router_at(config([], [broken.url])) as (_, base),
            http.post(base + "/v1/chat/completions", json=chat(stream=True)) as r,
        ):
            body = await r.read()
        assert body.startswith(b'data: {"i": 0}\n\n')
        assert b"upstream_broken" in body
        assert other.received == []
        assert len(broken.received) == 1


async def test_client_disconnect_cancels_the_engine_request(http: aiohttp.ClientSession) -> None:
    async with (
        fake_engine(behaviour="slow") as off,
        router_at(config([], [off.url])) as (
            router,
            base,
        ),
    ):
        request = asyncio.create_task(http.post(base + "/v1/chat/completions", json=chat()))
        await await_for(lambda: asyncio.sleep(0, len(off.received) == 1), 5, what="forwarded")
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await await_for(lambda: asyncio.sleep(0, off.cancelled == 1), 5, what="engine cancel")
        await await_for(
            lambda: asyncio.sleep(0, router.pools["off"].inflight == 0), 5, what="slot released"
        )


async def test_error_cases_are_openai_shaped(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk-test")
    async with (
        fake_engine(behaviour="slow") as slow,
        fake_engine() as off,
        router_at(
            config(
                [slow.url],
                [off.url],
                api_keys_dir=str(tmp_path),
                max_body_bytes=2048,
                request_timeout_seconds=0.3,
            )
        ) as (_, base),
    ):
        auth = {"Authorization": "Bearer sk-test"}
        cases: list[tuple[dict[str, Any], Any, int, str]] = [
            ({}, chat(), 401, "invalid_api_key"),
            ({"Authorization": "Bearer nope"}, chat(), 401, "invalid_api_key"),
            (auth, b"{not json", 400, "invalid_json"),
            (auth, {"model": MODEL}, 400, "missing_field"),
            (auth, chat(model="gpt-4"), 404, "model_not_found"),
            (auth, chat(reasoning="sometimes"), 400, "invalid_reasoning_mode"),
            (
                auth,
                chat(messages=[{"role": "user", "content": "x" * 4000}]),
                413,
                "request_too_large",
            ),
            (auth, chat(reasoning="on"), 504, "upstream_timeout"),
        ]
        for headers, payload, status, code in cases:
            kwargs: dict[str, Any] = (
                {"data": payload} if isinstance(payload, bytes) else {"json": payload}
            )
            async with http.post(base + "/v1/chat/completions", headers=headers, **kwargs) as r:
                assert r.status == status, (payload, await r.text())
                error = (await r.json())["error"]
                assert error["code"] == code
                assert set(error) == {"message", "type", "param", "code"}
        async with http.get(base + "/v1/models", headers=auth) as r:
            assert (await r.json())["data"][0]["id"] == MODEL


async def test_full_queue_is_429_with_retry_after(http: aiohttp.ClientSession) -> None:
    async with (
        fake_engine(behaviour="slow") as off,
        router_at(
            config(
                [],
                [off.url],
                pool={"max_inflight_per_endpoint": 1, "max_queue": 1, "queue_timeout_seconds": 10},
            )
        ) as (router, base),
    ):
        first = asyncio.create_task(http.post(base + "/v1/chat/completions", json=chat()))
        second = asyncio.create_task(http.post(base + "/v1/chat/completions", json=chat()))
        await await_for(
            lambda: asyncio.sleep(0, len(router.pools["off"].queue) == 1), 5, what="one queued"
        )
        async with http.post(base + "/v1/chat/completions", json=chat()) as r:
            assert r.status == 429
            assert int(r.headers["Retry-After"]) >= 1
        async with http.get(base + "/metrics") as r:
            text = await r.text()
        assert 'nemotron_router_queue_depth{pool="off"} 1.0' in text
        assert 'nemotron_router_inflight_requests{pool="off"} 1.0' in text
        assert 'nemotron_router_requests_total{code="429",pool="off"} 1.0' in text
        for task in (first, second):
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)


async def test_health_ready_metrics_and_scrape(http: aiohttp.ClientSession) -> None:
    async with (
        fake_engine(waiting=7) as off,
        router_at(config([], [off.url], generation=3), scrape_interval=0.05) as (router, base),
    ):
        async with http.get(base + "/health") as r:
            assert r.status == 200
        async with http.get(base + "/ready") as r:
            assert r.status == 200
        async with http.get(base + "/metrics") as r:
            text = await r.text()
        for name in (
            "nemotron_router_config_generation 3.0",
            'nemotron_router_endpoints{pool="off"} 1.0',
            'nemotron_router_endpoints{pool="on"} 0.0',
        ):
            assert name in text
        await await_for(
            lambda: asyncio.sleep(0, router.pools["off"].endpoints[off.url].waiting == 7),
            5,
            what="scraped waiting",
        )


async def test_drain_finishes_streams_and_refuses_new_connections(
    http: aiohttp.ClientSession,
) -> None:
    async with AsyncExitStack() as stack:
        off: FakeEngine = await stack.enter_async_context(fake_engine(hold_stream=True))
        router = Router(config([], [off.url]))
        ctx = running_router(router, host="127.0.0.1", port=0, drain_seconds=10)
        _, port = await ctx.__aenter__()
        base = f"http://127.0.0.1:{port}"
        r = await http.post(base + "/v1/chat/completions", json=chat(stream=True))
        await r.content.readuntil(b"\n\n")
        stopping = asyncio.create_task(ctx.__aexit__(None, None, None))
        await await_for(lambda: asyncio.sleep(0, router.draining), 5, what="draining")
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectionError):
                await fresh.get(base + "/health")
        assert not stopping.done()
        off.release_stream.set()
        rest = await r.read()
        r.release()
        assert rest.endswith(b"data: [DONE]\n\n")
        await asyncio.wait_for(stopping, 10)


async def test_config_file_changes_are_applied_in_place(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    import yaml

    async with fake_engine() as first, fake_engine() as second:
        path = tmp_path / "config.yaml"
        path.write_text(
            yaml.safe_dump(config([], [first.url], generation=1).model_dump(mode="json"))
        )
        router = Router(config([], [first.url], generation=1), config_path=path,
                        config_poll_interval=0.05)  # fmt: skip
        async with running_router(router, host="127.0.0.1", port=0, drain_seconds=5) as (_, port):
            base = f"http://127.0.0.1:{port}"
            path.write_text("pools: [not valid")  # ignored: the running config stays
            updated = config([], [second.url], generation=2, pool={"max_tokens": 7})
            await await_for(lambda: asyncio.sleep(0, router.reload_failures > 0), 5,
                            what="invalid file seen")  # fmt: skip
            assert router.config.generation == 1
            path.write_text(yaml.safe_dump(updated.model_dump(mode="json")))
            await await_for(lambda: asyncio.sleep(0, router.config.generation == 2), 5,
                            what="generation 2 applied")  # fmt: skip
            async with http.post(base + "/v1/chat/completions", json=chat()) as r:
                assert r.status == 200
            assert second.received[-1]["max_tokens"] == 7
            assert first.received == []
            async with http.get(base + "/metrics") as r:
                assert "nemotron_router_config_generation 2.0" in await r.text()


async def test_a_saturated_pool_borrows_an_idle_engine_of_the_other(
    http: aiohttp.ClientSession,
) -> None:
    # The off pool's only engine reports a queue; the on pool's engine has been idle for
    # LEND_QUIET_SCRAPES scrapes. Reasoning-off requests then run on the on engine, still with
    # the off pool's policy, up to LEND_MAX at once; without lending, or when the on engines
    # take a shorter context, they stay home.
    async with (
        fake_engine(behaviour="slow") as on,
        fake_engine(waiting=5) as off,
    ):
        lending = config([on.url], [off.url], lend_idle_capacity=True, pool={"max_model_len": 4096})
        async with router_at(lending, scrape_interval=0.05) as (router, base):
            await await_for(
                lambda: asyncio.sleep(0, router.pools["off"].is_saturated()), 5, what="scraped"
            )
            await await_for(
                lambda: asyncio.sleep(
                    0, router.pools["on"].endpoints[on.url].quiet >= LEND_QUIET_SCRAPES
                ),
                5,
                what="the on engine quiet for long enough",
            )
            held = [
                asyncio.create_task(http.post(base + "/v1/chat/completions", json=chat()))
                for _ in range(LEND_MAX + 1)
            ]
            await await_for(lambda: asyncio.sleep(0, len(on.received) == LEND_MAX), 5,
                            what="lent to the on engine")  # fmt: skip
            await await_for(lambda: asyncio.sleep(0, len(off.received) == 1), 5,
                            what="the one over the cap went home")  # fmt: skip
            assert all(sent["temperature"] == 0.0 for sent in on.received)  # off policy kept
            assert all(sent["max_tokens"] == 100 for sent in on.received)
            async with http.get(base + "/metrics") as r:
                text = await r.text()
            assert (
                f'nemotron_router_lent_requests_total{{lender="on",pool="off"}} {LEND_MAX}.0'
                in text
            )
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)
            await await_for(
                lambda: asyncio.sleep(0, router.pools["on"].endpoints[on.url].lent == 0),
                5,
                what="loans returned",
            )
        shorter = lending.model_copy(update={"pools": (
            lending.pools[0].model_copy(update={"max_model_len": 2048}), lending.pools[1])})  # fmt: skip
        for cfg in (lending.model_copy(update={"lend_idle_capacity": False}), shorter):
            before = len(on.received)
            async with router_at(cfg, scrape_interval=0.05) as (router, base):
                await await_for(
                    lambda: asyncio.sleep(0, router.pools["off"].is_saturated()), 5, what="scraped"
                )
                async with http.post(base + "/v1/chat/completions", json=chat()) as r:
                    assert r.status == 200
            assert len(on.received) == before

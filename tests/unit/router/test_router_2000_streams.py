"""2,000 concurrent streams through one router process to emulator processes complete without
an error. The emulator runs its timing model (sped up) so streams overlap; the router's own
in-flight gauge is sampled during the run to prove they were concurrent."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import aiohttp
import pytest

from nemotron_operator.router.serve import raise_open_files_limit
from tests.unit.router.processes import (
    SERVED,
    free_port,
    router_config,
    start_emulator,
    start_router,
    stop,
)

STREAMS = 2000
ENGINES = 4
TOKENS = 24
_INFLIGHT = re.compile(r'^nemotron_router_inflight_requests\{pool="off"\} (\S+)$', re.M)


@pytest.fixture(scope="module")
def router_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("router-2000")
    processes = []
    try:
        urls = []
        for _ in range(ENGINES):
            port = free_port()
            # Slower than real time so that every stream is still open when the last one
            # starts: 2,000 connections take a couple of seconds to open on two cores.
            processes.append(
                start_emulator(
                    port, workdir / f"e{port}.log", env={"NEMOTRON_EMULATOR_SPEED": "0.25"}
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        port = free_port()
        processes.append(start_router(router_config(on=[], off=urls), port, workdir))
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in reversed(processes):
            stop(process)


async def _stream(session: aiohttp.ClientSession, url: str, start: asyncio.Event) -> int:
    await start.wait()
    body = {
        "model": SERVED,
        "messages": [{"role": "user", "content": "count"}],
        "max_tokens": TOKENS,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        data = await response.read()
    events = [e for e in data.split(b"\n\n") if e.strip()]
    assert events[-1] == b"data: [DONE]", data[-200:]
    assert not any(b'"error"' in e for e in events)
    usage = json.loads(events[-2].removeprefix(b"data: "))["usage"]
    return int(usage["completion_tokens"])


async def _peak_inflight(session: aiohttp.ClientSession, url: str, done: asyncio.Event) -> float:
    peak = 0.0
    while not done.is_set():
        async with session.get(url + "/metrics") as response:
            match = _INFLIGHT.search(await response.text())
        if match:
            peak = max(peak, float(match.group(1)))
        await asyncio.sleep(0.1)
    return peak


async def test_2000_concurrent_streams(router_url: str) -> None:
    raise_open_files_limit()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        aiohttp.ClientSession() as probe,
    ):
        start, done = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(_peak_inflight(probe, router_url, done))
        tasks = [asyncio.create_task(_stream(session, router_url, start)) for _ in range(STREAMS)]
        start.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        done.set()
        peak = await watcher
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} failed, first: {errors[0]!r}"
    assert all(r == TOKENS for r in results)  # every stream carried its whole answer
    print(f"peak router in-flight: {peak:.0f} of {STREAMS}")
    assert peak >= 0.9 * STREAMS

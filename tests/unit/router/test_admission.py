"""The per-pool queue: order, bound, deadline, cancellation (router.admission via pools.Pool)."""

from __future__ import annotations

import asyncio

import pytest

from nemotron_operator.api.routerconfig import PoolRoute
from nemotron_operator.router.errors import RouterError
from nemotron_operator.router.pools import Pool
from tests.support.waiting import await_for


def make_pool(**update: object) -> Pool:
    route = PoolRoute(
        name="off",
        temperature=0.0,
        top_p=1.0,
        max_tokens=64,
        max_queue=2,
        queue_timeout_seconds=5.0,
        max_inflight_per_endpoint=1,
    ).model_copy(update=update)
    return Pool(route)


async def test_immediate_when_a_slot_is_free_and_released_after() -> None:
    pool = make_pool()
    pool.set_endpoints(["http://a"])
    url = await pool.admit()
    assert url == "http://a"
    assert pool.inflight == 1
    pool.release(url)
    assert pool.inflight == 0
    assert pool.endpoints[url].outstanding == 0


async def test_waiters_are_served_in_order_when_slots_free() -> None:
    pool = make_pool()
    pool.set_endpoints(["http://a"])
    first = await pool.admit()
    order: list[int] = []

    async def wait(i: int) -> None:
        url = await pool.admit()
        order.append(i)
        pool.release(url)

    tasks = [asyncio.create_task(wait(i)) for i in range(2)]
    await await_for(lambda: asyncio.sleep(0, len(pool.queue) == 2), 2, what="2 queued")
    with pytest.raises(RouterError) as info:
        await pool.admit()  # the queue holds 2
    assert info.value.status == 429
    assert info.value.headers()["Retry-After"] == "5"
    pool.release(first)
    await asyncio.gather(*tasks)
    assert order == [0, 1]
    assert len(pool.queue) == 0


async def test_pool_at_zero_holds_until_an_endpoint_appears() -> None:
    pool = make_pool()
    task = asyncio.create_task(pool.admit())
    await await_for(lambda: asyncio.sleep(0, len(pool.queue) == 1), 2, what="held")
    pool.set_endpoints(["http://b"])
    assert await task == "http://b"


async def test_deadline_gives_503_without_endpoints_and_429_with_busy_ones() -> None:
    pool = make_pool(queue_timeout_seconds=0.05)
    with pytest.raises(RouterError) as info:
        await pool.admit()
    assert info.value.status == 503
    assert "Retry-After" in info.value.headers()
    pool.set_endpoints(["http://a"])
    held = await pool.admit()
    with pytest.raises(RouterError) as info:
        await pool.admit()
    assert info.value.status == 429
    assert len(pool.queue) == 0
    pool.release(held)


async def test_cancelled_waiter_leaves_the_queue_and_leaks_no_slot() -> None:
    pool = make_pool()
    pool.set_endpoints(["http://a"])
    held = await pool.admit()
    task = asyncio.create_task(pool.admit())
    await await_for(lambda: asyncio.sleep(0, len(pool.queue) == 1), 2, what="queued")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(pool.queue) == 0
    pool.release(held)
    assert pool.inflight == 0
    assert await pool.admit() == "http://a"


async def test_zero_queue_rejects_at_once() -> None:
    pool = make_pool(max_queue=0)
    with pytest.raises(RouterError) as info:
        await pool.admit()
    assert info.value.status == 429


async def test_removed_endpoint_keeps_inflight_count() -> None:
    pool = make_pool(max_inflight_per_endpoint=0)
    pool.set_endpoints(["http://a", "http://b"])
    urls = [await pool.admit() for _ in range(4)]
    pool.set_endpoints(["http://b"])
    assert pool.inflight == 4
    for url in urls:
        pool.release(url)
    assert pool.inflight == 0
    assert pool.endpoints["http://b"].outstanding == 0

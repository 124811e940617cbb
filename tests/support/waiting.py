"""Polling with a deadline: tests wait for a condition, they never sleep and hope.

``wait_for`` (sync) and ``await_for`` (async) call a predicate until it returns a truthy value
and return that value, or raise ``TimeoutError`` with the last value or exception seen, so a
failing test says what it was waiting for and what it saw instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["await_for", "holds_for", "wait_for"]

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy; return it. Exceptions count as not yet."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout:.1f}s; last seen: {last!r}")
        time.sleep(interval)


async def await_for(
    predicate: Callable[[], Awaitable[T]],
    timeout: float,  # noqa: ASYNC109 - the same signature as wait_for
    *,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Async twin of ``wait_for`` for coroutine predicates."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = await predicate()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout:.1f}s; last seen: {last!r}")
        await asyncio.sleep(interval)


def holds_for(
    predicate: Callable[[], bool],
    duration: float,
    *,
    interval: float = 0.1,
    what: str = "condition",
) -> None:
    """Check that ``predicate`` stays true for ``duration`` seconds (for "X never happens"
    claims, which can only be observed over a window); fail at the first false."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not predicate():
            raise AssertionError(f"{what} stopped holding")
        time.sleep(interval)

"""The polling helper itself: it returns the first truthy value and reports what it saw."""

from __future__ import annotations

import itertools

import pytest

from tests.support.waiting import await_for, wait_for


def test_wait_for_returns_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and "done", timeout=5, interval=0.001) == "done"


def test_wait_for_times_out_with_last_value() -> None:
    with pytest.raises(TimeoutError, match=r"never true.*False"):
        wait_for(lambda: False, timeout=0.05, interval=0.01, what="never true")


def test_wait_for_reports_last_exception() -> None:
    def boom() -> bool:
        raise ValueError("nope")

    with pytest.raises(TimeoutError, match="nope"):
        wait_for(boom, timeout=0.05, interval=0.01)


async def test_await_for_returns_value() -> None:
    calls = itertools.count()

    async def predicate() -> int:
        return next(calls)

    assert await await_for(predicate, timeout=5, interval=0.001) == 1

"""Per-pool admission: a bounded FIFO of requests waiting for an engine slot, each with a wait
deadline. No I/O; ``pools.Pool`` owns one queue and gives it ``try_take`` (reserve an endpoint
or say none is free) and calls ``wake`` whenever a slot may have freed (a request finished, the
endpoint set changed).

A request waits when its pool has no ready endpoint (scaled to zero, starting up) or every
endpoint is at its in-flight cap. Beyond ``max_queue`` waiting requests the answer is 429 with
Retry-After at once; a request still waiting at its deadline gets 429 (endpoints exist but are
busy) or 503 (the pool has no endpoint: it is being woken or is down), both with Retry-After.
The queue length is the demand the autoscaler reads (``nemotron_router_queue_depth``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from nemotron_operator.router.errors import RouterError

__all__ = ["AdmissionQueue"]


class AdmissionQueue:
    """FIFO of waiters; ``try_take()`` reserves an endpoint URL (or returns None)."""

    def __init__(self, try_take: Callable[[], str | None], release: Callable[[str], None]) -> None:
        self._try_take = try_take
        self._release = release
        self._waiters: deque[asyncio.Future[str]] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    async def admit(
        self, *, max_queue: int, wait_seconds: float, has_endpoints: Callable[[], bool]
    ) -> str:
        """Reserve an endpoint, waiting in line up to ``wait_seconds``."""
        if not self._waiters:
            url = self._try_take()
            if url is not None:
                return url
        if len(self._waiters) >= max_queue:
            raise RouterError(
                429,
                "the pool's queue is full; retry later",
                type_="rate_limit_error",
                code="queue_full",
                retry_after=min(wait_seconds, 5.0),
            )
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            async with asyncio.timeout(wait_seconds):
                return await future
        except TimeoutError:
            if future.done() and not future.cancelled():
                return future.result()  # handed a slot just as the deadline passed
            if has_endpoints():
                raise RouterError(
                    429,
                    f"no engine slot became free within {wait_seconds:g}s",
                    type_="rate_limit_error",
                    code="queue_timeout",
                    retry_after=min(wait_seconds, 5.0),
                ) from None
            raise RouterError(
                503,
                f"the pool has no ready engine (scaled to zero or starting); waited {wait_seconds:g}s",
                type_="service_unavailable_error",
                code="pool_unavailable",
                retry_after=min(wait_seconds, 10.0),
            ) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(future.result())  # the client left after being handed a slot
            raise
        finally:
            if not future.done():
                future.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(future)

    def wake(self) -> None:
        """Hand free slots to waiters in arrival order."""
        while self._waiters:
            head = self._waiters[0]
            if head.done():
                self._waiters.popleft()
                continue
            url = self._try_take()
            if url is None:
                return
            self._waiters.popleft()
            head.set_result(url)

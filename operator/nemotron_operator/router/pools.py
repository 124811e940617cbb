"""Live state of one pool: its route (policy, admission settings), its ready endpoints with
their load, and its admission queue. ``server`` asks a ``Pool`` for an endpoint (``admit``,
``take_other`` for retries) and gives it back (``release``); ``discovery`` replaces the
endpoint set; ``scraper`` updates the scraped load. The choice itself is ``balancer.pick``.

``Pool.lend`` reserves an endpoint of this pool for a request of another pool that is
saturated (``balancer.saturated``/``can_lend``); the ``Loan`` it returns stands in for the
pool in ``upstream.forward`` and gives the lent slot back when the request ends.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from nemotron_operator.api.routerconfig import PoolRoute
from nemotron_operator.router.admission import AdmissionQueue
from nemotron_operator.router.balancer import (
    EndpointLoad,
    can_lend,
    pick,
    quiet_streak,
    saturated,
)
from nemotron_operator.router.enginemetrics import EngineLoad

__all__ = ["EndpointState", "Loan", "Pool"]


@dataclass(slots=True)
class EndpointState:
    url: str
    outstanding: int = 0
    waiting: float = 0.0
    kv_usage: float = 0.0
    lent: int = 0  # requests of another pool in flight here
    quiet: int = 0  # consecutive scrapes with no queue and little KV use


class Pool:
    def __init__(self, route: PoolRoute, *, rng: random.Random | None = None) -> None:
        self.route = route
        self.endpoints: dict[str, EndpointState] = {}
        # Counted apart from the endpoints: a request to a pod that left the set is still in
        # flight until it finishes.
        self.inflight = 0
        self._rng = rng or random.Random()
        self.queue = AdmissionQueue(self._take, self._release_url)

    @property
    def name(self) -> str:
        return self.route.name

    def has_endpoints(self) -> bool:
        return bool(self.endpoints)

    def _take(self, exclude: Collection[str] = ()) -> str | None:
        cap = self.route.max_inflight_per_endpoint
        loads = self.loads()
        if cap > 0:
            loads = [load for load in loads if load.outstanding < cap]
        url = pick(loads, self._rng, exclude)
        if url is not None:
            self.endpoints[url].outstanding += 1
            self.inflight += 1
        return url

    def _release_url(self, url: str) -> None:
        self.inflight = max(0, self.inflight - 1)
        state = self.endpoints.get(url)
        if state is not None and state.outstanding > 0:
            state.outstanding -= 1

    async def admit(self) -> str:
        """Reserve an endpoint (queueing per the route's admission settings)."""
        return await self.queue.admit(
            max_queue=self.route.max_queue,
            wait_seconds=self.route.queue_timeout_seconds,
            has_endpoints=self.has_endpoints,
        )

    def take_other(self, exclude: Collection[str]) -> str | None:
        """For a retry: reserve an endpoint not in ``exclude`` without queueing."""
        return self._take(exclude)

    def release(self, url: str) -> None:
        self._release_url(url)
        self.queue.wake()

    def set_endpoints(self, urls: Iterable[str]) -> None:
        """Replace the ready set, keeping the counts of endpoints that stay."""
        wanted = set(urls)
        self.endpoints = {
            url: self.endpoints.get(url) or EndpointState(url) for url in sorted(wanted)
        }
        self.queue.wake()

    def set_engine_load(self, url: str, load: EngineLoad) -> None:
        state = self.endpoints.get(url)
        if state is not None:
            state.waiting = load.waiting
            state.kv_usage = load.kv_usage
            state.quiet = quiet_streak(state.quiet, load.waiting, load.kv_usage)

    def loads(self) -> list[EndpointLoad]:
        return [
            EndpointLoad(s.url, s.outstanding, s.waiting, s.kv_usage)
            for s in self.endpoints.values()
        ]

    def is_saturated(self) -> bool:
        return saturated([s.waiting for s in self.endpoints.values()])

    def lend(self) -> Loan | None:
        """Reserve an endpoint for a request of the other, saturated pool, if one of this
        pool's engines is nearly idle; None otherwise (the request stays in its pool)."""
        lenders = [
            load
            for load, state in zip(self.loads(), self.endpoints.values(), strict=True)
            if can_lend(load, state.lent, state.quiet)
        ]
        url = pick(lenders, self._rng)
        if url is None:
            return None
        state = self.endpoints[url]
        state.outstanding += 1
        state.lent += 1
        self.inflight += 1
        return Loan(self, url)


class Loan:
    """A slot lent by ``lender`` to a request of the other pool; used in place of a ``Pool`` by
    ``upstream.forward`` (retries go to the lender's other endpoints, unlent)."""

    def __init__(self, lender: Pool, url: str) -> None:
        self.lender = lender
        self.url = url
        self._returned = False

    @property
    def name(self) -> str:
        return self.lender.name

    async def admit(self) -> str:
        return self.url

    def take_other(self, exclude: Collection[str]) -> str | None:
        return self.lender.take_other(exclude)

    def release(self, url: str) -> None:
        if url == self.url and not self._returned:
            self._returned = True
            state = self.lender.endpoints.get(url)
            if state is not None and state.lent > 0:
                state.lent -= 1
        self.lender.release(url)

"""Endpoint picking: least outstanding requests with power-of-two choices, informed by each
engine's scraped queue (``vllm:num_requests_waiting``) and KV-cache use
(``vllm:kv_cache_usage_perc``). Pure: the state it reads is passed in and randomness comes
from the caller's ``random.Random``; ``pools`` owns the live state and calls ``pick``.

Lending (``saturated``, ``can_lend``): when every engine of a request's own pool is queueing
and an engine of the other pool is nearly idle, the request may run there (same model; the
router has already applied the request's own mode and policy). Both thresholds are
conservative: the lender keeps most of its KV cache for its own pool's traffic, and a request
is lent only while its own pool is visibly queueing, so the isolation that two pools buy under
load is kept, and only idle capacity is shared at light load.

Why power of two: picking the global minimum from slightly stale scraped numbers makes every
router replica herd onto the same engine for a scrape interval; two random candidates keep
most of the benefit (exponentially better max load than random) without the herd.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ["EndpointLoad", "can_lend", "load_score", "pick", "quiet_streak", "saturated"]

# A request waiting in an engine's queue costs more than one it is already running: it also
# tells us the engine is saturated (its batch is full), so weigh it above an outstanding one.
WAITING_WEIGHT = 2.0
# KV use only matters near full, where the engine starts preempting; below that it is a
# tie-breaker.
KV_WEIGHT = 1.0
KV_PRESSURE = 0.9
KV_PRESSURE_WEIGHT = 20.0
# Lending: the borrower's engines all have at least this many requests waiting; the lender has
# had none waiting and at most LEND_KV_MAX KV use at each of its last LEND_QUIET_SCRAPES
# scrapes (one quiet moment in a busy engine is not idle capacity: a lent reasoning request
# holds KV cache for many seconds), and fewer than LEND_MAX lent requests in flight (scraped
# numbers are up to a scrape interval old; the cap bounds what a burst can put on a lender
# before the next scrape shows it).
SATURATED_WAITING = 1.0
LEND_KV_MAX = 0.5
LEND_QUIET_SCRAPES = 5
LEND_MAX = 2


@dataclass(frozen=True, slots=True)
class EndpointLoad:
    url: str
    outstanding: int = 0  # this router's requests in flight to it (exact, live)
    waiting: float = 0.0  # the engine's own queue, scraped (stale by up to a scrape interval)
    kv_usage: float = 0.0  # 0..1, scraped


def load_score(load: EndpointLoad) -> float:
    """Lower is better."""
    pressure = max(0.0, load.kv_usage - KV_PRESSURE) * KV_PRESSURE_WEIGHT
    return (
        load.outstanding
        + WAITING_WEIGHT * max(0.0, load.waiting)
        + KV_WEIGHT * load.kv_usage
        + pressure
    )


def pick(
    loads: Sequence[EndpointLoad],
    rng: random.Random,
    exclude: Collection[str] = (),
) -> str | None:
    """The URL to send the next request to, or None when no endpoint is left to try."""
    candidates = [load for load in loads if load.url not in exclude]
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0].url
    # Two distinct candidates, uniformly (as rng.sample(candidates, 2), at a fraction of its
    # cost on the request path).
    count = len(candidates)
    i = int(rng.random() * count)
    j = int(rng.random() * (count - 1))
    first, second = candidates[i], candidates[j + 1 if j >= i else j]
    a, b = load_score(first), load_score(second)
    if a == b:
        return (first if rng.random() < 0.5 else second).url
    return first.url if a < b else second.url


def saturated(waiting: Sequence[float]) -> bool:
    """A pool with engines, every one of them queueing, from each engine's scraped waiting
    count (an empty pool is not saturated: it is scaled to zero or starting, and its queue is
    what wakes it)."""
    return bool(waiting) and all(w >= SATURATED_WAITING for w in waiting)


def quiet_streak(streak: int, waiting: float, kv_usage: float) -> int:
    """Consecutive scrapes that found an engine with no queue and KV use at most LEND_KV_MAX,
    after one more scrape."""
    return streak + 1 if waiting <= 0 and kv_usage <= LEND_KV_MAX else 0


def can_lend(load: EndpointLoad, lent: int, quiet: int) -> bool:
    """Whether an engine of another pool may take one more lent request: quiet now and for
    its last ``LEND_QUIET_SCRAPES`` scrapes, with room under the lent cap."""
    return (
        load.waiting <= 0
        and load.kv_usage <= LEND_KV_MAX
        and quiet >= LEND_QUIET_SCRAPES
        and lent < LEND_MAX
    )

"""Power-of-two-choices picking and when one pool lends to the other (router.balancer)."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.router.balancer import (
    LEND_KV_MAX,
    LEND_MAX,
    LEND_QUIET_SCRAPES,
    EndpointLoad,
    can_lend,
    load_score,
    pick,
    quiet_streak,
    saturated,
)

loads = st.lists(
    st.builds(
        EndpointLoad,
        url=st.text(min_size=1, max_size=5),
        outstanding=st.integers(0, 100),
        waiting=st.floats(0, 50),
        kv_usage=st.floats(0, 1),
    ),
    max_size=8,
    unique_by=lambda load: load.url,
)


def test_empty_or_all_excluded_gives_none() -> None:
    rng = random.Random(1)
    assert pick([], rng) is None
    assert pick([EndpointLoad("a")], rng, exclude={"a"}) is None
    assert pick([EndpointLoad("a"), EndpointLoad("b")], rng, exclude={"a"}) == "b"


def test_two_endpoints_always_the_less_loaded() -> None:
    rng = random.Random(2)
    for _ in range(50):
        assert pick([EndpointLoad("a", 5), EndpointLoad("b", 4)], rng) == "b"
        assert pick([EndpointLoad("a", 1), EndpointLoad("b", 0, waiting=3)], rng) == "a"


def test_waiting_and_kv_pressure_count() -> None:
    busy = EndpointLoad("a", outstanding=1, waiting=2)
    assert load_score(busy) > load_score(EndpointLoad("b", outstanding=4))
    assert load_score(EndpointLoad("c", kv_usage=0.99)) > load_score(EndpointLoad("d", 1))


def test_equal_loads_spread_evenly() -> None:
    rng = random.Random(3)
    endpoints = [EndpointLoad(str(i)) for i in range(4)]
    counts = Counter(pick(endpoints, rng) for _ in range(4000))
    assert set(counts) == {"0", "1", "2", "3"}
    assert min(counts.values()) > 800


@given(loads=loads, seed=st.integers(), excluded=st.sets(st.text(min_size=1, max_size=5)))
def test_pick_properties(loads: list[EndpointLoad], seed: int, excluded: set[str]) -> None:
    choice = pick(loads, random.Random(seed), excluded)
    allowed = [load for load in loads if load.url not in excluded]
    if not allowed:
        assert choice is None
        return
    assert choice in {load.url for load in allowed}
    # Power of two choices never picks the unique strictly-worst endpoint.
    scores = sorted(load_score(load) for load in allowed)
    if len(allowed) >= 2 and scores[-1] > scores[-2]:
        worst = max(allowed, key=load_score)
        assert choice != worst.url


@given(loads)
def test_saturated_means_engines_and_every_one_queueing(pool: list[EndpointLoad]) -> None:
    waiting = [load.waiting for load in pool]
    assert saturated(waiting) == (bool(pool) and all(load.waiting >= 1 for load in pool))
    assert not saturated([])  # a pool at zero wakes through its queue, it does not borrow


@given(
    st.builds(EndpointLoad, url=st.just("a"), outstanding=st.integers(0, 100),
              waiting=st.floats(0, 50), kv_usage=st.floats(0, 1)),
    st.integers(0, 10),
    st.integers(0, 10),
)  # fmt: skip
def test_only_a_nearly_idle_engine_lends(load: EndpointLoad, lent: int, quiet: int) -> None:
    if can_lend(load, lent, quiet):
        assert load.waiting == 0
        assert load.kv_usage <= LEND_KV_MAX
        assert quiet >= LEND_QUIET_SCRAPES
        assert lent < LEND_MAX
    else:
        assert (load.waiting > 0 or load.kv_usage > LEND_KV_MAX or lent >= LEND_MAX
                or quiet < LEND_QUIET_SCRAPES)  # fmt: skip


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 1)), max_size=20))
def test_the_quiet_streak_counts_quiet_scrapes_since_the_last_busy_one(
    scrapes: list[tuple[float, float]],
) -> None:
    streak = 0
    for waiting, kv in scrapes:
        streak = quiet_streak(streak, waiting, kv)
    expected = 0
    for waiting, kv in reversed(scrapes):
        if waiting > 0 or kv > LEND_KV_MAX:
            break
        expected += 1
    assert streak == expected

"""The autoscaling policy: examples for each rule and hypothesis properties over the maths."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from nemotron_operator.autoscaler.policy import Decision, PoolSignals, decide
from nemotron_operator.autoscaler.settings import PolicySettings
from nemotron_operator.autoscaler.state import PolicyState

S = PolicySettings(min_replicas=1, max_replicas=10, slots_per_replica=16)


def run(
    signals: PoolSignals,
    *,
    current: int,
    settings_: PolicySettings = S,
    steps: int,
    start: float = 0.0,
    state: PolicyState | None = None,
) -> list[Decision]:
    """Feed the same signals every interval, applying each decision."""
    out: list[Decision] = []
    st_ = state or PolicyState()
    for i in range(steps):
        d = decide(
            signals=signals,
            current=current,
            settings=settings_,
            state=st_,
            now=start + i * settings_.interval_s,
        )
        out.append(d)
        current, st_ = d.desired, d.state
    return out


def saturated(total: float, replicas: int, slots: float = 16) -> PoolSignals:
    running = min(total, replicas * slots)
    return PoolSignals(
        engine_running=running,
        engine_waiting=total - running,
        router_inflight=total,
        ready_engines=replicas,
    )


def test_scale_up_at_once_by_what_the_queue_needs() -> None:
    d = decide(signals=saturated(200, 1), current=1, settings=S, state=PolicyState(), now=0)
    assert d.desired == math.ceil(200 / (16 + 4))
    assert d.reason.startswith("scale up")


def test_no_scale_up_when_queue_within_target() -> None:
    d = decide(signals=saturated(16 + 4, 1), current=1, settings=S, state=PolicyState(), now=0)
    assert d.desired == 1


def test_scale_down_waits_for_window_and_consecutive_decisions() -> None:
    idle = saturated(10, 5)
    decisions = run(idle, current=5, steps=80)
    first_down = next(i for i, d in enumerate(decisions) if d.desired < 5)
    assert first_down * S.interval_s >= S.scale_down_stabilization_s
    assert decisions[first_down].desired == 1
    assert decisions[first_down].reason.startswith("scale down")


def test_scale_down_consecutive_counts_with_zero_window() -> None:
    fast = PolicySettings(
        min_replicas=1, max_replicas=10, slots_per_replica=16, scale_down_stabilization_s=0
    )
    decisions = run(saturated(0, 4), current=4, settings_=fast, steps=6)
    desired = [d.desired for d in decisions]
    # three decisions in a row wanting fewer, the first of them after a fresh start
    assert desired[:2] == [4, 4]
    assert desired[2] == 1


def test_wake_from_zero_on_first_held_request() -> None:
    zero = PolicySettings(min_replicas=0, max_replicas=10, slots_per_replica=16)
    held = PoolSignals(router_queue=1)
    d = decide(signals=held, current=0, settings=zero, state=PolicyState(), now=0)
    assert d.desired == 1
    assert d.reason.startswith("wake")
    big = decide(
        signals=PoolSignals(router_queue=100), current=0, settings=zero, state=PolicyState(), now=0
    )
    assert big.desired == 5


def test_wake_even_with_incomplete_engine_data() -> None:
    zero = PolicySettings(min_replicas=0, max_replicas=3)
    sig = PoolSignals(router_queue=2, complete=False)
    assert decide(signals=sig, current=0, settings=zero, state=PolicyState(), now=0).desired == 1


def test_scale_to_zero_after_idle_time_only_when_min_is_zero() -> None:
    zero = PolicySettings(min_replicas=0, max_replicas=3, scale_to_zero_idle_s=60)
    decisions = run(PoolSignals(ready_engines=1), current=1, settings_=zero, steps=20)
    first_zero = next(i for i, d in enumerate(decisions) if d.desired == 0)
    assert first_zero * zero.interval_s >= 60
    assert decisions[first_zero].reason.startswith("scale to zero")
    one = PolicySettings(min_replicas=1, max_replicas=3, scale_to_zero_idle_s=60)
    assert all(
        d.desired == 1
        for d in run(PoolSignals(ready_engines=1), current=1, settings_=one, steps=200)
    )


def test_missing_data_holds() -> None:
    sig = PoolSignals(complete=False)
    decisions = run(sig, current=4, steps=200)
    assert all(d.desired == 4 for d in decisions)
    assert decisions[-1].reason == "hold: metrics incomplete"


def test_missing_data_restarts_the_window() -> None:
    fast = PolicySettings(min_replicas=1, max_replicas=10, scale_down_stabilization_s=30)
    decisions = run(saturated(0, 4), current=4, settings_=fast, steps=5)
    d = decide(
        signals=PoolSignals(complete=False),
        current=4,
        settings=fast,
        state=decisions[-1].state,
        now=25,
    )
    later = run(saturated(0, 4), current=4, settings_=fast, steps=6, start=30, state=d.state)
    assert all(x.desired == 4 for x in later)


def test_never_outside_bounds_when_spec_changes() -> None:
    d = decide(signals=saturated(0, 12), current=12, settings=S, state=PolicyState(), now=0)
    assert d.desired == 10
    d = decide(signals=saturated(0, 0), current=0, settings=S, state=PolicyState(), now=0)
    assert d.desired == 1


def test_learns_capacity_from_saturated_engines() -> None:
    # KV cache limits each engine to 8 sequences, not the 16 slots configured
    sig = PoolSignals(engine_running=16, engine_waiting=40, router_inflight=56, ready_engines=2)
    d = decide(signals=sig, current=2, settings=S, state=PolicyState(), now=0)
    assert d.state.capacity_per_replica == 8
    assert d.desired == math.ceil(56 / (8 + 4))


def test_state_round_trip() -> None:
    decisions = run(saturated(300, 2), current=2, steps=4)
    state = decisions[-1].state
    assert PolicyState.from_dict(state.to_dict()) == state
    assert PolicyState.from_dict({"version": 99}) == PolicyState()
    assert PolicyState.from_dict({"version": 1, "down": "garbage"}) == PolicyState()


signals_st = st.builds(
    PoolSignals,
    router_queue=st.integers(0, 2000).map(float),
    router_inflight=st.integers(0, 2000).map(float),
    engine_waiting=st.integers(0, 2000).map(float),
    engine_running=st.integers(0, 2000).map(float),
    ready_engines=st.integers(0, 20),
    complete=st.booleans(),
    completed_total=st.none() | st.integers(0, 100_000).map(float),
)
settings_st = st.builds(
    PolicySettings,
    min_replicas=st.integers(0, 3),
    max_replicas=st.integers(3, 40),
    target_queue_per_replica=st.integers(1, 10).map(float),
    scale_down_stabilization_s=st.sampled_from([0.0, 15.0, 300.0]),
    scale_up_stabilization_s=st.sampled_from([0.0, 10.0]),
    scale_down_consecutive=st.integers(1, 4),
    scale_to_zero_idle_s=st.sampled_from([0.0, 60.0]),
    slots_per_replica=st.integers(1, 256).map(float),
)


def _history(
    sigs: list[PoolSignals], settings_: PolicySettings, current: int
) -> tuple[PolicyState, int, float]:
    state, now = PolicyState(), 0.0
    for sig in sigs:
        d = decide(signals=sig, current=current, settings=settings_, state=state, now=now)
        state, current, now = d.state, d.desired, now + settings_.interval_s
    return state, current, now


@settings(max_examples=150, deadline=None)
@given(
    sigs=st.lists(signals_st, max_size=8),
    sig=signals_st,
    settings_=settings_st,
    current=st.integers(0, 40),
)
def test_never_outside_min_max(
    sigs: list[PoolSignals], sig: PoolSignals, settings_: PolicySettings, current: int
) -> None:
    state, current, now = _history(sigs, settings_, current)
    d = decide(signals=sig, current=current, settings=settings_, state=state, now=now)
    assert settings_.min_replicas <= d.desired <= settings_.max_replicas


@settings(max_examples=150, deadline=None)
@given(
    sigs=st.lists(signals_st, max_size=8),
    sig=signals_st,
    settings_=settings_st,
    current=st.integers(0, 40),
    more_router=st.integers(0, 500),
    more_waiting=st.integers(0, 500),
)
def test_monotone_in_queue_depth(
    sigs: list[PoolSignals],
    sig: PoolSignals,
    settings_: PolicySettings,
    current: int,
    more_router: int,
    more_waiting: int,
) -> None:
    state, current, now = _history(sigs, settings_, current)
    bigger = PoolSignals(
        router_queue=sig.router_queue + more_router,
        router_inflight=sig.router_inflight + more_waiting,
        engine_waiting=sig.engine_waiting + more_waiting,
        engine_running=sig.engine_running,
        ready_engines=sig.ready_engines,
        complete=sig.complete,
        completed_total=sig.completed_total,
    )
    a = decide(signals=sig, current=current, settings=settings_, state=state, now=now)
    b = decide(signals=bigger, current=current, settings=settings_, state=state, now=now)
    assert b.desired >= a.desired


@settings(max_examples=150, deadline=None)
@given(
    sigs=st.lists(signals_st, max_size=8),
    sig=signals_st,
    settings_=settings_st,
    current=st.integers(1, 40),
)
def test_restart_never_scales_down(
    sigs: list[PoolSignals], sig: PoolSignals, settings_: PolicySettings, current: int
) -> None:
    state, current, now = _history(sigs, settings_, current)
    # the state lost (fresh) never scales down ...
    lost = decide(signals=sig, current=current, settings=settings_, state=PolicyState(), now=now)
    assert lost.desired >= min(current, settings_.max_replicas)
    # ... and a restored state decides exactly what the running operator would have
    restored = PolicyState.from_dict(state.to_dict())
    kept = decide(signals=sig, current=current, settings=settings_, state=state, now=now)
    again = decide(signals=sig, current=current, settings=settings_, state=restored, now=now)
    assert (again.desired, again.reason) == (kept.desired, kept.reason)


@settings(max_examples=100, deadline=None)
@given(
    load=st.integers(0, 3000),
    settings_=settings_st,
    current=st.integers(1, 40),
    start_wait=st.integers(0, 3000),
)
def test_constant_load_never_oscillates(
    load: int, settings_: PolicySettings, current: int, start_wait: int
) -> None:
    """A closed loop on a constant load: replicas move in one direction, then stay."""
    slots = settings_.slots_per_replica
    current = min(current, settings_.max_replicas)
    state, now = PolicyState(), 0.0
    seen = [current]
    for _ in range(400):
        running = min(load, current * slots)
        sig = PoolSignals(
            engine_running=running,
            engine_waiting=load - running,
            router_inflight=load,
            ready_engines=current,
        )
        d = decide(signals=sig, current=current, settings=settings_, state=state, now=now)
        state, current, now = d.state, d.desired, now + settings_.interval_s
        seen.append(current)
    changes = [b - a for a, b in itertools.pairwise(seen) if b != a]
    ups = [c for c in changes if c > 0]
    downs = [c for c in changes if c < 0]
    # at most one direction of travel, except the single scale-to-zero after an idle spell
    assert not (ups and downs) or (load == 0 and seen[-1] == 0 and settings_.min_replicas == 0)
    assert seen[-1] == seen[-2] == seen[-50]


@settings(max_examples=100, deadline=None)
@given(
    arrivals=st.integers(0, 400).map(float),
    per_replica=st.integers(1, 100).map(float),
    settings_=settings_st,
    current=st.integers(1, 40),
)
def test_constant_arrival_rate_never_oscillates(
    arrivals: float, per_replica: float, settings_: PolicySettings, current: int
) -> None:
    """A fluid fleet (each replica completes ``per_replica``/s, the rest queues) fed a constant
    arrival rate. Until a saturated interval has shown what one replica completes, sizing
    falls back on concurrency and may be wrong, and a backlog is drained with extra replicas;
    so a few moves are allowed at first, after which the count settles and stays."""
    current = min(current, settings_.max_replicas)
    state, now, completed, queue = PolicyState(), 0.0, 0.0, 0.0
    dt = settings_.interval_s
    seen = [current]
    for _ in range(400):
        capacity = current * per_replica
        served = min(arrivals + queue / dt, capacity)
        queue = max(0.0, queue + (arrivals - served) * dt)
        completed += served * dt
        running = min(served * 2.0, current * settings_.slots_per_replica)
        sig = PoolSignals(
            engine_running=running,
            engine_waiting=queue if current else 0.0,
            router_queue=0.0 if current else queue,
            router_inflight=running + queue,
            ready_engines=current,
            completed_total=completed,
        )
        d = decide(signals=sig, current=current, settings=settings_, state=state, now=now)
        state, current, now = d.state, d.desired, now + dt
        seen.append(current)
    changes = [b - a for a, b in itertools.pairwise(seen) if b != a]
    reversals = sum(1 for a, b in itertools.pairwise(changes) if (a > 0) != (b > 0))
    assert reversals <= 2, seen  # a wrong first guess, and the backlog's extra replicas
    assert len(set(seen[-100:])) == 1, seen  # then it settles for good

"""The autoscaling policy: one pure function from a pool's signals to desired replicas.

``decide`` takes the pool's signals (router queue and in-flight, engines' waiting/running),
the current replicas, ``settings.PolicySettings`` and the remembered ``state.PolicyState``,
and returns a ``Decision``: desired replicas, a reason, and the next state. It does no I/O and
reads no clock; ``loop`` (the operator) and ``simulator`` (the proving ground) both call it.

The rule, per pool (``t`` = target queue per replica, ``c`` = concurrency one replica serves,
``u`` = scale-down utilisation < 1, the headroom that keeps a constant load from oscillating):
- demand = held + running + waiting requests; queue = router queue + engines' waiting.
- with the router's completed-requests counter: arrivals/s ``lam`` = completions + growth of
  demand over the interval, and ``mu`` = completions/s one replica sustains, learnt while the
  pool is saturated. Then up = ``ceil((lam + queue / drain_s) / mu)``, down =
  ``ceil(lam / (mu * u))``. Until ``mu`` is known: up = ``ceil(demand / (c + t))`` (at most
  ``t`` waiting per replica), down = ``ceil(demand / (c * u))``.
- scale up (fast): to ``up`` at once -- as much as the queue needs, not one at a time; with an
  up-stabilisation window, the least recommendation seen over that window.
- scale down (slow): to ``down``, only after
  ``scale_down_consecutive`` decisions in a row wanted fewer, taking the largest recommendation
  over the down window, and never in the first window after a (re)start or a gap in data.
- wake: a pool at zero with any held request goes to ``max(1, up)`` on the first decision.
- scale to zero: only when ``min == 0``, after ``scale_to_zero_idle_s`` without any request.
- missing data: hold (a failed scrape is not zero load); only a wake or a min/max clamp moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from nemotron_operator.autoscaler.settings import PolicySettings
from nemotron_operator.autoscaler.state import PolicyState

__all__ = ["Decision", "PoolSignals", "decide"]

# A gap longer than this many intervals between decisions (operator down, scrapes failing)
# restarts the observation window: nothing seen in between may justify a scale-down.
_GAP_INTERVALS = 3.0


@dataclass(frozen=True)
class PoolSignals:
    """One pool's load, summed over router replicas and over engines."""

    router_queue: float = 0.0
    router_inflight: float = 0.0
    engine_waiting: float = 0.0
    engine_running: float = 0.0
    ready_engines: int = 0
    # Requests the router finished for this pool, ever (summed counter); None: not exposed.
    completed_total: float | None = None
    # False when a scrape failed or a source was missing: the policy then holds.
    complete: bool = True

    @property
    def queue(self) -> float:
        """Requests waiting for an engine slot, in the router or in an engine."""
        return max(self.router_queue, 0.0) + max(self.engine_waiting, 0.0)

    @property
    def demand(self) -> float:
        """Every request of the pool not finished: held, waiting or running."""
        forwarded = max(self.router_inflight, self.engine_running + self.engine_waiting, 0.0)
        return max(self.router_queue, 0.0) + forwarded


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one pool at one time."""

    desired: int
    current: int
    reason: str
    state: PolicyState

    @property
    def changed(self) -> bool:
        return self.desired != self.current


def _clamp(replicas: int, settings: PolicySettings) -> int:
    return max(settings.min_replicas, min(settings.max_replicas, replicas))


def _learn_capacity(
    signals: PoolSignals, settings: PolicySettings, known: float | None
) -> float | None:
    """Concurrency per replica: learnt when engines queue (saturated), raised when they run more."""
    if not signals.complete or signals.ready_engines <= 0:
        return known
    per_replica = signals.engine_running / signals.ready_engines
    saturated = signals.engine_waiting >= settings.target_queue_per_replica * signals.ready_engines
    if saturated and per_replica >= 1:
        return min(per_replica, settings.slots_per_replica)
    if known is not None and per_replica > known:
        return min(per_replica, settings.slots_per_replica)
    return known


# Time constant of the smoothed arrival rate: Poisson noise over one 5 s interval is large
# for slow pools (a reasoning-on pool sees a few requests a second).
_ARRIVAL_TAU_S = 60.0


@dataclass(frozen=True)
class _Rates:
    arrival_rate: float | None  # smoothed
    service_rate: float | None
    arrival_now: float | None = None  # over the last interval only


def _rates(
    *, signals: PoolSignals, settings: PolicySettings, state: PolicyState, now: float, gap: bool
) -> _Rates:
    """Arrivals/s over the last interval, and completions/s one replica sustains when saturated.

    Arrivals = completions + growth of the requests in the system. The per-replica service
    rate is learnt only from saturated intervals (queue per replica at or above target) with an
    unchanged number of ready engines; an unsaturated interval can only raise it.
    """
    known = state.service_rate_per_replica
    if (
        gap
        or signals.completed_total is None
        or state.last_completed is None
        or state.last_demand is None
        or state.last_time is None
        or now <= state.last_time
    ):
        return _Rates(None, known)
    dt = now - state.last_time
    completed = signals.completed_total - state.last_completed
    if completed < 0:  # a router restarted: its counter began again
        return _Rates(None, known)
    arrivals = max(0.0, (completed + signals.demand - state.last_demand) / dt)
    if state.arrival_rate is not None:
        alpha = 1.0 - math.exp(-dt / _ARRIVAL_TAU_S)
        smoothed = state.arrival_rate + alpha * (arrivals - state.arrival_rate)
    else:
        smoothed = arrivals
    ready = signals.ready_engines
    if ready <= 0 or ready != state.last_ready or completed <= 0:
        return _Rates(smoothed, known, arrivals)
    per_replica = completed / dt / ready
    saturated = signals.engine_waiting >= settings.target_queue_per_replica * ready
    learnt: float | None
    if saturated:
        learnt = per_replica if known is None else 0.5 * known + 0.5 * per_replica
    else:
        learnt = known if known is None else max(known, per_replica)
    return _Rates(smoothed, learnt, arrivals)


def _window(
    recs: tuple[tuple[float, int], ...], *, now: float, seconds: float, value: int
) -> tuple[tuple[float, int], ...]:
    kept = tuple((t, r) for t, r in recs if now - t < seconds)
    return (*kept, (now, value))


def decide(
    *,
    signals: PoolSignals,
    current: int,
    settings: PolicySettings,
    state: PolicyState,
    now: float,
) -> Decision:
    """Desired replicas for one pool, with a reason and the state to remember."""
    s = settings
    fresh = state.last_time is None
    gap = fresh or (now - (state.last_time or now)) > _GAP_INTERVALS * s.interval_s
    observing_since = now if gap or state.observing_since is None else state.observing_since
    base = replace(state, last_time=now, observing_since=observing_since)
    if gap:
        base = replace(base, down_recommendations=(), up_recommendations=(), down_streak=0)

    def done(desired: int, reason: str, st: PolicyState) -> Decision:
        return Decision(
            desired=desired,
            current=current,
            reason=reason,
            state=replace(st, last_desired=desired, last_reason=reason),
        )

    if not signals.complete:
        # Not zero load: hold. Data that did arrive may still wake a pool at zero.
        held = replace(
            base,
            observing_since=None,
            down_streak=0,
            down_recommendations=(),
            last_completed=None,
        )
        if current == 0 and signals.router_queue > 0:
            return done(max(_clamp(1, s), 1), "wake: requests held while at zero", held)
        if _clamp(current, s) != current:
            return done(_clamp(current, s), "clamp to min/max (metrics incomplete)", held)
        return done(current, "hold: metrics incomplete", held)

    capacity = _learn_capacity(signals, s, state.capacity_per_replica)
    c = capacity if capacity is not None else s.slots_per_replica
    demand, queue = signals.demand, signals.queue
    rates = _rates(signals=signals, settings=s, state=state, now=now, gap=gap)
    base = replace(
        base,
        capacity_per_replica=capacity,
        service_rate_per_replica=rates.service_rate,
        arrival_rate=rates.arrival_rate,
        last_completed=signals.completed_total,
        last_demand=demand,
        last_ready=signals.ready_engines,
    )
    if rates.arrival_rate is not None and rates.service_rate:
        # Throughput sizing: concurrency alone misleads, since a busier engine runs each
        # request slower (in-flight at n replicas is not in-flight at m replicas).
        lam, mu = rates.arrival_rate, rates.service_rate
        # While engines queue, trust the last interval's rate too: that is a burst.
        queueing = queue > s.target_queue_per_replica * max(signals.ready_engines, 1)
        lam_up = max(lam, rates.arrival_now or 0.0) if queueing else lam
        need_up = math.ceil((lam_up + queue / s.backlog_drain_s) / mu)
        need_down = max(
            math.ceil(lam / (mu * s.scale_down_utilization)),
            math.ceil(demand / c),  # never fewer slots than requests in flight
        )
        sizing = f"arrivals {lam_up:.1f}/s, {mu:.2f}/s per replica, queue {queue:g}"
    else:
        need_up = math.ceil(demand / (c + s.target_queue_per_replica))
        need_down = math.ceil(demand / (c * s.scale_down_utilization))
        sizing = f"demand {demand:g}, {c:g} + {s.target_queue_per_replica:g} per replica"
    idle_since = (
        (state.idle_since if state.idle_since is not None else now) if demand <= 0 else None
    )
    base = replace(base, idle_since=idle_since)

    def remember_high(st: PolicyState, replicas: int) -> PolicyState:
        # A scale-up is a recommendation too: the down window starts again from it.
        recs = _window(
            st.down_recommendations, now=now, seconds=s.scale_down_stabilization_s, value=replicas
        )
        return replace(st, down_recommendations=recs, down_streak=0)

    if current == 0:
        if queue > 0 or demand > 0:
            target = _clamp(max(1, need_up), s)
            return done(target, f"wake: {queue:g} held at zero", remember_high(base, target))
        if s.min_replicas > 0:
            return done(_clamp(0, s), "clamp to min", base)
        return done(0, "idle at zero", base)

    # Up: immediate, or the least recommendation over the up window once it covers the window.
    up_recs = _window(
        base.up_recommendations, now=now, seconds=s.scale_up_stabilization_s, value=need_up
    )
    base = replace(base, up_recommendations=up_recs if s.scale_up_stabilization_s > 0 else ())
    up_target = need_up
    if s.scale_up_stabilization_s > 0:
        covered = now - observing_since >= s.scale_up_stabilization_s
        up_target = min(r for _, r in up_recs) if covered else current
    if _clamp(up_target, s) > current:
        target = _clamp(up_target, s)
        return done(
            target,
            f"scale up: {sizing}",
            remember_high(base, target),
        )
    if current > s.max_replicas:
        return done(s.max_replicas, "clamp to max", replace(base, down_streak=0))

    # Scale to zero after the idle time (never in the first idle window after a restart).
    if s.min_replicas == 0 and idle_since is not None and not gap:
        idle_for = now - max(idle_since, observing_since)
        if idle_for >= s.scale_to_zero_idle_s:
            return done(0, f"scale to zero: idle {idle_for:.0f}s", replace(base, down_streak=0))

    # Down: slow, several decisions in a row, the largest recommendation over the window.
    floor = max(s.min_replicas, 1)
    rec = min(max(need_down, floor), s.max_replicas)
    down_recs = _window(
        base.down_recommendations, now=now, seconds=s.scale_down_stabilization_s, value=rec
    )
    stable = max(r for _, r in down_recs)
    base = replace(base, down_recommendations=down_recs)
    if stable >= current:
        if current < s.min_replicas:
            return done(s.min_replicas, "clamp to min", replace(base, down_streak=0))
        return done(current, f"hold: {sizing}", replace(base, down_streak=0))
    streak = state.down_streak + 1 if not gap else 1
    base = replace(base, down_streak=streak)
    window_ok = now - observing_since >= s.scale_down_stabilization_s
    if gap or streak < s.scale_down_consecutive or not window_ok:
        return done(
            current,
            f"hold: scale-down to {stable} pending ({streak}/{s.scale_down_consecutive})",
            base,
        )
    return done(
        stable,
        f"scale down: {sizing} (held {s.scale_down_stabilization_s:g}s)",
        replace(base, down_streak=0),
    )

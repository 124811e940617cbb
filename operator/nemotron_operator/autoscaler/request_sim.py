"""Per-request variant of ``simulator``: every request is drawn with its own sizes (R2's
distributions, so reasoning-on outputs have their real log-uniform spread), admitted FIFO
into the least-loaded ready engine, and finishes when its engine has run its steps.

It cross-checks the fluid model of ``simulator`` (same ``EngineModel``, same policies, the
same seeded arrival counts per second, same ``SimResult``) on traces small enough to replay
request by request (A2, A3: a few hundred thousand requests; A1's five million are left to
the fluid model). Each engine keeps a virtual clock of decode steps done per running
sequence; a request finishes when that clock passes its admission value plus its steps
(processor sharing, as continuous batching shares steps). The batch size, and so the step
time, is updated once per simulated second.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from nemotron_operator.autoscaler.policy import PoolSignals
from nemotron_operator.autoscaler.simulator import EngineModel, PoolResult, Scaler, SimResult
from nemotron_operator.autoscaler.traces import RequestClass, Trace

__all__ = ["simulate_requests"]


@dataclass
class _Engine:
    steps_done: float = 0.0
    # (steps_done at which it finishes, admission time, KV tokens held)
    running: list[tuple[float, float, float]] = field(default_factory=list)
    kv: float = 0.0


@dataclass
class _Pool:
    name: str
    rc: RequestClass
    counts: np.ndarray
    scaler: Scaler
    result: PoolResult
    starting: list[float] = field(default_factory=list)  # ready times
    ready: list[_Engine] = field(default_factory=list)
    draining: list[_Engine] = field(default_factory=list)
    # (arrival second, steps, KV tokens)
    queue: deque[tuple[float, float, float]] = field(default_factory=deque)

    @property
    def current(self) -> int:
        return len(self.ready) + len(self.starting)


def _step_time(model: EngineModel, engine: _Engine) -> float:
    b = len(engine.running)
    return model.step_base_s + model.step_per_seq_s * b + model.step_per_kv_token_s * engine.kv


def _serve(pool: _Pool, engine: _Engine, *, now: float, model: EngineModel) -> None:
    if not engine.running:
        return
    engine.steps_done += 1.0 / _step_time(model, engine)
    res = pool.result
    while engine.running and engine.running[0][0] <= engine.steps_done:
        _, admitted, kv = heapq.heappop(engine.running)
        engine.kv -= kv
        res.completed += 1
        res.served_steps_time += now + 1.0 - admitted


def _admit(pool: _Pool, now: float, model: EngineModel) -> None:
    res = pool.result
    while pool.queue and pool.ready:
        engine = min(pool.ready, key=lambda e: len(e.running))
        arrived, steps, kv = pool.queue[0]
        if len(engine.running) >= model.max_num_seqs or engine.kv + kv > model.kv_tokens:
            return
        pool.queue.popleft()
        heapq.heappush(engine.running, (engine.steps_done + steps, now, kv))
        engine.kv += kv
        wait = int(now - arrived)
        res.waits[wait] = res.waits.get(wait, 0.0) + 1.0


def _scale(pool: _Pool, desired: int, *, now: float, model: EngineModel) -> None:
    while pool.current < desired:
        pool.starting.append(now + model.startup_s)
    while pool.current > desired:
        if pool.starting:
            pool.starting.pop()
            continue
        engine = min(pool.ready, key=lambda e: len(e.running))
        pool.ready.remove(engine)
        pool.draining.append(engine)


def _tick(
    pool: _Pool, now: float, *, model: EngineModel, rng: np.random.Generator, sample_s: int
) -> None:
    res = pool.result
    if pool.starting and min(pool.starting) <= now:
        pool.ready.extend(_Engine() for t in pool.starting if t <= now)
        pool.starting = [t for t in pool.starting if t > now]
    n = int(pool.counts[int(now)])
    res.arrived += n
    if n:
        prompt, output = pool.rc.sample(rng, n)
        steps = output + prompt / model.prefill_tokens_per_step
        kv = prompt + output / 2.0
        pool.queue.extend((now, float(s), float(k)) for s, k in zip(steps, kv, strict=True))
    _admit(pool, now, model)
    for engine in pool.ready:
        _serve(pool, engine, now=now, model=model)
    for engine in pool.draining:
        _serve(pool, engine, now=now, model=model)
    pool.draining = [e for e in pool.draining if e.running]
    res.gpu_seconds += pool.current + len(pool.draining)
    scaler = pool.scaler
    if int(now) % max(1, round(scaler.interval_s)) == 0:
        queued = float(len(pool.queue))
        held = queued if not pool.ready else 0.0
        running = float(sum(len(e.running) for e in pool.ready))
        signals = PoolSignals(
            router_queue=held,
            router_inflight=running + sum(len(e.running) for e in pool.draining) + queued - held,
            engine_waiting=queued - held,
            engine_running=running,
            ready_engines=len(pool.ready),
            completed_total=res.completed,
        )
        current = pool.current
        desired, _ = scaler.decide(now=now, signals=signals, current=current)
        if desired != current:
            res.scale_events += 1
            res.decisions.append((now, current, desired))
            _scale(pool, desired, now=now, model=model)
    if int(now) % sample_s == 0:
        res.series_t.append(now)
        res.series_replicas.append(pool.current)
        res.series_ready.append(len(pool.ready))
        res.series_queue.append(float(len(pool.queue)))
        res.series_rate.append(float(n))


def simulate_requests(
    *,
    trace: Trace,
    scalers: dict[str, Scaler],
    model: EngineModel,
    initial_replicas: dict[str, int],
    seed: int = 1,
    sample_s: int = 10,
) -> SimResult:
    """Replay ``trace`` request by request; the same arrival counts as ``simulate`` for a seed."""
    rng = np.random.default_rng(seed)
    pools: list[_Pool] = []
    for name, rc, rate in trace.pools:
        lam = np.array([rate(float(t)) for t in range(trace.duration_s)])
        pool = _Pool(
            name=name,
            rc=rc,
            counts=rng.poisson(lam),
            scaler=scalers[name],
            result=PoolResult(pool=name),
        )
        pool.ready = [_Engine() for _ in range(initial_replicas.get(name, 1))]
        pools.append(pool)
    sizes = np.random.default_rng(seed + 1_000_003)
    for t in range(trace.duration_s):
        for pool in pools:
            _tick(pool, float(t), model=model, rng=sizes, sample_s=sample_s)
    for pool in pools:
        pool.result.queued_at_end = float(len(pool.queue))
        pool.result.running_at_end = float(
            sum(len(e.running) for e in [*pool.ready, *pool.draining])
        )
    return SimResult(
        trace=trace.name,
        policy=scalers[trace.pools[0][0]].name,
        startup_s=model.startup_s,
        pools=[p.result for p in pools],
        bursts=trace.bursts,
    )

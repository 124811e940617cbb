"""A fleet simulator that drives autoscaling policies over the traces of ``traces``.

The built-in policy runs through ``OursScaler``, which calls ``policy.decide`` -- the very
function ``loop`` calls in the operator -- with the state it returns; ``baselines`` supply the
peers. ``simulate`` replays one trace against one policy and returns a ``SimResult``.

Model (documented with its numbers in docs/autoscaling.md). Time advances in 1 s steps;
the fleet is event-driven at that resolution (pod created -> ready after the start-up delay;
scale-down -> the pod drains its running requests, then goes), requests are a fluid of FIFO
cohorts (arrival second, count) drawn from seeded Poisson arrivals, so a 6 h trace takes
well under a second per policy instead of millions of per-request events.
- Engine (Nemotron Nano 4B, bf16, one H100, vLLM continuous batching): up to
  ``max_num_seqs`` = 256 running sequences and a KV cache of 480k tokens; one decode step of
  a batch of ``b`` sequences holding ``k`` KV tokens takes ``5 ms + 0.02 ms * b + 40 ns * k``
  (weights read once per step; per-sequence compute; KV read at ~3.3 TB/s, 128 KiB/token);
  a request needs ``output + prompt / 512`` steps (chunked prefill of 512 tokens per step)
  and holds ``prompt + output / 2`` KV tokens on average. Completions leave a replica at
  rate ``running / (steps * step_time)`` (exponential fluid service).
- Router: forwards at once to ready engines, which queue what exceeds their slots or KV
  (``vllm:num_requests_waiting``); with no ready engine it holds requests (its queue depth).
- Queue wait: from arrival to admission into an engine's batch (1 s resolution).
- GPU time: every pod from creation to the end of its drain (starting pods hold a GPU).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nemotron_operator.autoscaler.policy import PoolSignals, decide
from nemotron_operator.autoscaler.settings import PolicySettings
from nemotron_operator.autoscaler.state import PolicyState
from nemotron_operator.autoscaler.traces import RequestClass, Trace

__all__ = [
    "EngineModel",
    "OursScaler",
    "PoolResult",
    "Scaler",
    "SimResult",
    "simulate",
]


@dataclass(frozen=True)
class EngineModel:
    """Throughput of one replica (see the module docstring for where the numbers come from)."""

    max_num_seqs: int = 256
    kv_tokens: float = 480_000.0
    step_base_s: float = 0.005
    step_per_seq_s: float = 0.00002
    step_per_kv_token_s: float = 40e-9
    prefill_tokens_per_step: float = 512.0
    startup_s: float = 90.0

    def steps(self, rc: RequestClass) -> float:
        return rc.output_tokens + rc.prompt_tokens / self.prefill_tokens_per_step

    def kv_per_request(self, rc: RequestClass) -> float:
        return rc.prompt_tokens + rc.output_tokens / 2.0

    def slots(self, rc: RequestClass) -> float:
        """Concurrent requests of this class one replica holds (slots or KV, whichever binds)."""
        return min(float(self.max_num_seqs), self.kv_tokens / self.kv_per_request(rc))

    def step_time(self, running: float, rc: RequestClass) -> float:
        return (
            self.step_base_s
            + self.step_per_seq_s * running
            + self.step_per_kv_token_s * running * self.kv_per_request(rc)
        )


class Scaler(Protocol):
    """An autoscaling policy as the simulator drives it."""

    @property
    def name(self) -> str: ...

    @property
    def interval_s(self) -> float: ...

    def decide(self, *, now: float, signals: PoolSignals, current: int) -> tuple[int, str]: ...


@dataclass
class OursScaler:
    """The built-in policy: ``policy.decide`` with its state carried between decisions."""

    settings: PolicySettings
    name: str = "ours (queue depth)"
    state: PolicyState = field(default_factory=PolicyState)

    @property
    def interval_s(self) -> float:
        return self.settings.interval_s

    def decide(self, *, now: float, signals: PoolSignals, current: int) -> tuple[int, str]:
        d = decide(
            signals=signals, current=current, settings=self.settings, state=self.state, now=now
        )
        self.state = d.state
        return d.desired, d.reason


@dataclass
class PoolResult:
    """What one pool did over a trace; series are sampled every ``sample_s`` seconds."""

    pool: str
    gpu_seconds: float = 0.0
    arrived: float = 0.0
    queued_at_end: float = 0.0
    running_at_end: float = 0.0
    waits: dict[int, float] = field(default_factory=dict)  # wait (s) -> requests
    served_steps_time: float = 0.0  # sum over completions of their time in the engine
    completed: float = 0.0
    scale_events: int = 0
    decisions: list[tuple[float, int, int]] = field(default_factory=list)  # (t, from, to)
    series_t: list[float] = field(default_factory=list)
    series_replicas: list[int] = field(default_factory=list)
    series_ready: list[int] = field(default_factory=list)
    series_queue: list[float] = field(default_factory=list)
    series_rate: list[float] = field(default_factory=list)


@dataclass
class SimResult:
    trace: str
    policy: str
    startup_s: float
    pools: list[PoolResult]
    bursts: tuple[tuple[float, float], ...]

    @property
    def gpu_hours(self) -> float:
        return sum(p.gpu_seconds for p in self.pools) / 3600.0

    def wait_percentile(self, q: float) -> float:
        merged: dict[int, float] = {}
        for p in self.pools:
            for w, n in p.waits.items():
                merged[w] = merged.get(w, 0.0) + n
        total = sum(merged.values())
        if total <= 0:
            return 0.0
        seen = 0.0
        for w in sorted(merged):
            seen += merged[w]
            if seen >= q * total:
                return float(w)
        return float(max(merged))

    @property
    def scale_events(self) -> int:
        return sum(p.scale_events for p in self.pools)

    @property
    def mean_service_s(self) -> float:
        done = sum(p.completed for p in self.pools)
        return sum(p.served_steps_time for p in self.pools) / done if done else 0.0

    def burst_reaction_s(self) -> list[float | None]:
        """Per burst: seconds from its start to the first scale-up decision (None: none)."""
        out: list[float | None] = []
        for start, end in self.bursts:
            ups = [
                t
                for p in self.pools
                for t, old, new in p.decisions
                if new > old and start <= t < end + 60
            ]
            out.append(min(ups) - start if ups else None)
        return out


@dataclass
class _Pod:
    ready_at: float


@dataclass
class _PoolSim:
    name: str
    rc: RequestClass
    rates: np.ndarray  # arrivals per second, drawn up front
    scaler: Scaler
    starting: list[_Pod] = field(default_factory=list)
    ready: int = 0
    running: float = 0.0
    draining: list[float] = field(default_factory=list)  # running requests per draining pod
    queue: deque[list[float]] = field(default_factory=deque)  # [arrival second, count]
    queued: float = 0.0
    result: PoolResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = PoolResult(pool=self.name)

    @property
    def current(self) -> int:
        return self.ready + len(self.starting)


def _serve(
    running: float, replicas: int, *, model: EngineModel, rc: RequestClass
) -> tuple[float, float]:
    """Completions over 1 s of ``running`` requests spread over ``replicas``; and their time."""
    if running <= 0 or replicas <= 0:
        return 0.0, 0.0
    per = running / replicas
    service_s = model.steps(rc) * model.step_time(per, rc)
    return running * (1.0 - math.exp(-1.0 / service_s)), service_s


def _scale(pool: _PoolSim, desired: int, *, now: float, model: EngineModel) -> None:
    while pool.current < desired:
        pool.starting.append(_Pod(ready_at=now + model.startup_s))
    while pool.current > desired:
        if pool.starting:  # newest first: the least sunk start-up time
            pool.starting.pop()
            continue
        share = pool.running / pool.ready
        pool.running -= share
        pool.ready -= 1
        pool.draining.append(share)


def simulate(
    *,
    trace: Trace,
    scalers: dict[str, Scaler],
    model: EngineModel,
    initial_replicas: dict[str, int],
    seed: int = 1,
    sample_s: int = 10,
) -> SimResult:
    """Replay ``trace`` with one scaler per pool; deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    pools: list[_PoolSim] = []
    for name, rc, rate in trace.pools:
        lam = np.array([rate(float(t)) for t in range(trace.duration_s)])
        sim = _PoolSim(name=name, rc=rc, rates=rng.poisson(lam).astype(float), scaler=scalers[name])
        sim.ready = initial_replicas.get(name, 1)
        pools.append(sim)
    for t in range(trace.duration_s):
        now = float(t)
        for pool in pools:
            _tick(pool, now, model=model, sample_s=sample_s)
    for pool in pools:
        pool.result.queued_at_end = pool.queued
        pool.result.running_at_end = pool.running + sum(pool.draining)
    first = scalers[trace.pools[0][0]]
    return SimResult(
        trace=trace.name,
        policy=first.name,
        startup_s=model.startup_s,
        pools=[p.result for p in pools],
        bursts=trace.bursts,
    )


def _tick(pool: _PoolSim, now: float, *, model: EngineModel, sample_s: int) -> None:
    rc, res = pool.rc, pool.result
    # Pods whose start-up is over join the pool.
    if pool.starting and pool.starting[0].ready_at <= now:
        still = [p for p in pool.starting if p.ready_at > now]
        pool.ready += len(pool.starting) - len(still)
        pool.starting = still
    # Arrivals join the FIFO; admissions fill free slots (by count and by KV).
    arrivals = float(pool.rates[int(now)])
    res.arrived += arrivals
    if arrivals > 0:
        pool.queue.append([now, arrivals])
        pool.queued += arrivals
    free = max(0.0, pool.ready * model.slots(rc) - pool.running)
    while free > 1e-9 and pool.queue:
        cohort = pool.queue[0]
        take = min(free, cohort[1])
        wait = int(now - cohort[0])
        res.waits[wait] = res.waits.get(wait, 0.0) + take
        cohort[1] -= take
        free -= take
        pool.running += take
        pool.queued -= take
        if cohort[1] <= 1e-9:
            pool.queue.popleft()
    # One second of service on ready and draining pods.
    done, service_s = _serve(pool.running, pool.ready, model=model, rc=rc)
    pool.running -= done
    res.completed += done
    res.served_steps_time += done * service_s
    kept: list[float] = []
    for share in pool.draining:
        d, s = _serve(share, 1, model=model, rc=rc)
        res.completed += d
        res.served_steps_time += d * s
        if share - d >= 0.5:
            kept.append(share - d)
    pool.draining = kept
    res.gpu_seconds += pool.current + len(pool.draining)
    # The policy, at its own interval, on what it would scrape now.
    scaler = pool.scaler
    if int(now) % max(1, round(scaler.interval_s)) == 0:
        held = pool.queued if pool.ready == 0 else 0.0
        waiting = pool.queued - held
        signals = PoolSignals(
            router_queue=held,
            router_inflight=pool.running + sum(pool.draining) + waiting,
            engine_waiting=waiting,
            engine_running=pool.running,
            ready_engines=pool.ready,
            completed_total=res.completed,
        )
        current = pool.current
        desired, _reason = scaler.decide(now=now, signals=signals, current=current)
        if desired != current:
            res.scale_events += 1
            res.decisions.append((now, current, desired))
            _scale(pool, desired, now=now, model=model)
    if int(now) % sample_s == 0:
        res.series_t.append(now)
        res.series_replicas.append(pool.current)
        res.series_ready.append(pool.ready)
        res.series_queue.append(pool.queued)
        res.series_rate.append(float(pool.rates[int(now)]))

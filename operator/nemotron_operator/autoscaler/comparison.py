"""The policy comparison of docs/benchmarks.md: every trace x start-up delay x policy.

``run_comparison`` replays ``traces`` through ``simulator.simulate`` (or, per request,
``request_sim.simulate_requests``) with the built-in policy
(``simulator.OursScaler``) and the ``baselines``, all with the same bounds (1..16 replicas,
one replica at the start); ``format_table`` renders the rows as Markdown. ``cli`` prints it
and ``plots`` draws the runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nemotron_operator.autoscaler.baselines import KedaThreshold, KubeAIAverage
from nemotron_operator.autoscaler.request_sim import simulate_requests
from nemotron_operator.autoscaler.settings import PolicySettings
from nemotron_operator.autoscaler.simulator import (
    EngineModel,
    OursScaler,
    Scaler,
    SimResult,
    simulate,
)
from nemotron_operator.autoscaler.traces import TRACES

__all__ = ["POLICIES", "Row", "format_table", "run_comparison"]

MIN_REPLICAS, MAX_REPLICAS = 1, 16

POLICIES: dict[str, Callable[[], Scaler]] = {
    "ours": lambda: OursScaler(
        PolicySettings(min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS)
    ),
    "keda": lambda: KedaThreshold(min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS),
    "kubeai": lambda: KubeAIAverage(min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS),
}


@dataclass(frozen=True)
class Row:
    trace: str
    startup_s: float
    policy: str
    result: SimResult
    keda_gpu_hours: float

    @property
    def gpu_ratio(self) -> float:
        return self.result.gpu_hours / self.keda_gpu_hours if self.keda_gpu_hours else 0.0


def run_comparison(
    *, traces: Sequence[str], startups: Sequence[float], seed: int = 1, per_request: bool = False
) -> list[Row]:
    """Every combination, deterministic for ``seed`` (the same arrivals for every policy).

    ``per_request`` replays request by request (``request_sim``) instead of the fluid model.
    """
    run = simulate_requests if per_request else simulate
    rows: list[Row] = []
    for startup in startups:
        model = EngineModel(startup_s=startup)
        for name in traces:
            trace = TRACES[name]()
            results = {
                key: run(
                    trace=trace,
                    scalers={pool: make() for pool, _, _ in trace.pools},
                    model=model,
                    initial_replicas={pool: MIN_REPLICAS for pool, _, _ in trace.pools},
                    seed=seed,
                )
                for key, make in POLICIES.items()
            }
            keda = results["keda"].gpu_hours
            rows.extend(
                Row(trace=name, startup_s=startup, policy=key, result=r, keda_gpu_hours=keda)
                for key, r in results.items()
            )
    return rows


def _reaction(result: SimResult) -> str:
    times = result.burst_reaction_s()
    if not times:
        return "-"
    got = [t for t in times if t is not None]
    missed = len(times) - len(got)
    text = f"{max(got):.0f} s (max of {len(got)})" if got else "none"
    return text + (f", {missed} without" if missed else "")


def format_table(rows: Sequence[Row]) -> str:
    """Markdown: one line per trace, start-up delay and policy."""
    lines = [
        "| trace | start-up | policy | GPU-hours | vs KEDA | p95 queue wait | p50 | scale events "
        "| burst start -> first scale-up | mean time in engine |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row.result
        lines.append(
            f"| {row.trace} | {row.startup_s:.0f} s | {r.policy} | {r.gpu_hours:.1f} "
            f"| {row.gpu_ratio:.2f}x | {r.wait_percentile(0.95):.0f} s "
            f"| {r.wait_percentile(0.5):.0f} s | {r.scale_events} | {_reaction(r)} "
            f"| {r.mean_service_s:.1f} s |"
        )
    return "\n".join(lines)

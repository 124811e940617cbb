"""The autoscaling step with in-memory fakes of its Protocols (the Kubernetes boundary)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nemotron_operator.api.models import NemotronDeploymentSpec
from nemotron_operator.autoscaler.loop import PoolOutcome, autoscale_once
from nemotron_operator.autoscaler.metrics_scrape import PoolTargets
from nemotron_operator.autoscaler.policy import PoolSignals
from nemotron_operator.autoscaler.settings import (
    PolicySettings,
    builtin_autoscaled_pools,
    slots_from_engine_args,
)
from nemotron_operator.autoscaler.state import PolicyState

FAST = PolicySettings(
    min_replicas=0,
    max_replicas=8,
    slots_per_replica=4,
    scale_down_stabilization_s=10,
    scale_down_consecutive=2,
    scale_to_zero_idle_s=20,
    interval_s=1,
)


class FakeCluster:
    """Deployments' replicas, stored state and the metrics each pool shows."""

    def __init__(self, replicas: dict[str, int]) -> None:
        self.replicas = replicas
        self.writes: list[tuple[str, int]] = []
        self.states: dict[str, dict[str, Any]] = {}
        self.signals: dict[str, PoolSignals] = {}
        self.fail_writes = False
        self.fail_targets = False

    async def targets(self, *, namespace: str, name: str, pool: str) -> PoolTargets:
        if self.fail_targets:
            raise RuntimeError("apiserver unreachable")
        return PoolTargets((f"router/{pool}",), ())

    async def fetch(self, *, targets: PoolTargets, pool: str) -> PoolSignals:
        return self.signals.get(pool, PoolSignals(complete=False))

    async def get_replicas(self, *, namespace: str, deployment: str) -> int:
        return self.replicas[deployment]

    async def set_replicas(self, *, namespace: str, deployment: str, replicas: int) -> None:
        if self.fail_writes:
            raise RuntimeError("conflict")
        self.writes.append((deployment, replicas))
        self.replicas[deployment] = replicas

    async def load(self, *, namespace: str, name: str, pool: str) -> Mapping[str, Any] | None:
        return self.states.get(pool)

    async def save(self, *, namespace: str, name: str, pool: str, state: Mapping[str, Any]) -> None:
        self.states[pool] = dict(state)


async def step(
    cluster: FakeCluster, now: float, pools: dict[str, PolicySettings] | None = None
) -> list[PoolOutcome]:
    return await autoscale_once(
        namespace="ai",
        name="nano",
        pools=pools or {"on": FAST},
        targets=cluster.targets,
        fetch=cluster.fetch,
        scaler=cluster,
        store=cluster,
        now=now,
    )


async def test_wake_then_scale_down_then_zero() -> None:
    cluster = FakeCluster({"nano-on": 0})
    cluster.signals["on"] = PoolSignals(router_queue=3)
    [out] = await step(cluster, 0)
    assert out.scaled
    assert out.desired == 1
    assert out.reason.startswith("wake")
    assert cluster.writes == [("nano-on", 1)]
    assert "event" not in out.to_status()
    assert out.to_status()["lastDecisionTime"] == "1970-01-01T00:00:00+00:00"

    # a burst: many replicas at once
    cluster.signals["on"] = PoolSignals(
        engine_running=4, engine_waiting=60, router_inflight=64, ready_engines=1
    )
    [out] = await step(cluster, 1)
    assert out.desired == 8  # ceil(64 / (4 + 4)) = 8, the max
    # load gone: held through the window, then down, then to zero after the idle time
    cluster.signals["on"] = PoolSignals(ready_engines=8)
    seen = []
    for t in range(2, 60):
        [out] = await step(cluster, t)
        seen.append((t, out.desired))
    first_down = next(t for t, d in seen if d < 8)
    assert first_down >= 1 + 10
    first_zero = next(t for t, d in seen if d == 0)
    assert first_zero >= 2 + 20
    assert cluster.writes[-1] == ("nano-on", 0)


async def test_missing_metrics_never_scale_down() -> None:
    cluster = FakeCluster({"nano-on": 5})
    for t in range(100):
        cluster.fail_targets = t % 2 == 0
        [out] = await step(cluster, t)
        assert out.desired == 5
    assert cluster.writes == []


async def test_restart_restores_state_and_keeps_the_window() -> None:
    cluster = FakeCluster({"nano-on": 4})
    cluster.signals["on"] = PoolSignals(ready_engines=4)
    for t in range(5):
        await step(cluster, t)
    assert cluster.writes == []
    saved = PolicyState.from_dict(cluster.states["on"])
    assert saved.down_streak == 5
    assert saved.observing_since == 0
    # a "new operator" (same store) continues the window: down at t=10, not t=15
    restarted = FakeCluster({"nano-on": 4})
    restarted.states = cluster.states
    restarted.signals = cluster.signals
    for t in range(5, 12):
        await step(restarted, t)
    assert restarted.writes
    assert restarted.writes[0] == ("nano-on", 1)
    # losing the state instead restarts the window: no scale-down in the first window
    lost = FakeCluster({"nano-on": 4})
    lost.signals = cluster.signals
    for t in range(12, 21):
        await step(lost, t)
    assert lost.writes == []


async def test_failed_write_is_reported_not_raised() -> None:
    cluster = FakeCluster({"nano-off": 1, "nano-on": 1})
    cluster.fail_writes = True
    cluster.signals["on"] = PoolSignals(
        engine_running=4, engine_waiting=40, router_inflight=44, ready_engines=1
    )
    cluster.signals["off"] = PoolSignals(engine_running=1, router_inflight=1, ready_engines=1)
    outs = await step(cluster, 0, {"on": FAST, "off": FAST})
    by_pool = {o.pool: o for o in outs}
    assert by_pool["on"].error
    assert not by_pool["on"].scaled
    assert by_pool["on"].to_status()["error"].startswith("scale failed")
    assert by_pool["off"].error is None
    assert by_pool["off"].desired == 1


def test_settings_from_the_crd_spec() -> None:
    spec = NemotronDeploymentSpec.model_validate(
        {
            "model": {"preset": "nano-4b-v1.1"},
            "pools": {
                "reasoningOn": {
                    "replicas": {"min": 0, "max": 6},
                    "engineArgs": ["--max-num-seqs", "64"],
                    "autoscaling": {
                        "enabled": True,
                        "targetQueuePerReplica": 2,
                        "intervalSeconds": 1,
                    },
                },
                "reasoningOff": {"autoscaling": {"enabled": True, "engine": "keda"}},
            },
        }
    )
    pools = builtin_autoscaled_pools(spec)
    assert set(pools) == {"on"}
    on = pools["on"]
    assert (on.min_replicas, on.max_replicas, on.target_queue_per_replica) == (0, 6, 2)
    assert (on.interval_s, on.slots_per_replica, on.scale_down_stabilization_s) == (1, 64, 300)
    assert slots_from_engine_args(["--max-num-seqs=32"]) == 32
    assert slots_from_engine_args([]) == 256


async def test_one_pool_failing_does_not_stop_the_other() -> None:
    cluster = FakeCluster({"nano-on": 1})  # no nano-off Deployment
    cluster.signals["on"] = PoolSignals(
        engine_running=4, engine_waiting=40, router_inflight=44, ready_engines=1
    )
    outs = await step(cluster, 0, {"on": FAST, "off": FAST})
    by_pool = {o.pool: o for o in outs}
    assert by_pool["off"].error is not None
    assert by_pool["off"].error.startswith("cannot read replicas")
    assert not by_pool["off"].scaled
    assert by_pool["on"].scaled
    assert cluster.writes == [("nano-on", by_pool["on"].desired)]


async def test_each_pool_runs_at_its_own_interval() -> None:
    slow = PolicySettings(min_replicas=1, max_replicas=4, interval_s=30)
    cluster = FakeCluster({"nano-on": 1, "nano-off": 1})
    cluster.signals["on"] = PoolSignals(engine_running=1, router_inflight=1, ready_engines=1)
    cluster.signals["off"] = PoolSignals(engine_running=1, router_inflight=1, ready_engines=1)
    seen: dict[str, list[float]] = {"on": [], "off": []}
    for t in range(0, 61):
        for out in await step(cluster, float(t), {"on": FAST, "off": slow}):
            seen[out.pool].append(out.time)
    assert seen["on"] == [float(t) for t in range(61)]
    assert seen["off"] == [0.0, 30.0, 60.0]

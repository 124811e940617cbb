"""The fleet simulator, the traces and the comparison CLI, on short traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron_operator.autoscaler import simulator
from nemotron_operator.autoscaler.baselines import KedaThreshold, KubeAIAverage
from nemotron_operator.autoscaler.cli import register
from nemotron_operator.autoscaler.policy import PoolSignals
from nemotron_operator.autoscaler.settings import PolicySettings
from nemotron_operator.autoscaler.simulator import EngineModel, OursScaler, simulate
from nemotron_operator.autoscaler.traces import OFF, ON, Trace, a1_diurnal, a2_bursts


def burst_trace(base: float = 20.0, duration_s: int = 1500) -> Trace:
    def rate(t: float) -> float:
        return base * (10.0 if 300 <= t < 420 else 1.0)

    return Trace("T", "test", duration_s, (("off", OFF, rate),), bursts=((300.0, 420.0),))


def ours() -> OursScaler:
    return OursScaler(PolicySettings(min_replicas=1, max_replicas=16))


def test_engine_model_numbers() -> None:
    m = EngineModel()
    assert m.slots(OFF) == 256  # slots bind for short requests
    assert m.slots(ON) == pytest.approx(480_000 / (1100 + ON.output_tokens / 2))  # KV binds
    # a saturated replica serves ~85 reasoning-off requests/s
    per_s = 256 / (m.steps(OFF) * m.step_time(256, OFF))
    assert 80 < per_s < 90


def test_deterministic_for_a_seed() -> None:
    a = simulate(
        trace=burst_trace(),
        scalers={"off": ours()},
        model=EngineModel(),
        initial_replicas={"off": 1},
        seed=7,
    )
    b = simulate(
        trace=burst_trace(),
        scalers={"off": ours()},
        model=EngineModel(),
        initial_replicas={"off": 1},
        seed=7,
    )
    assert a.gpu_hours == b.gpu_hours
    assert a.pools[0].decisions == b.pools[0].decisions


def test_requests_are_conserved_and_startup_delays_capacity() -> None:
    trace = burst_trace()
    r = simulate(
        trace=trace,
        scalers={"off": ours()},
        model=EngineModel(startup_s=90),
        initial_replicas={"off": 1},
    )
    pool = r.pools[0]
    admitted = sum(pool.waits.values())
    assert pool.arrived > 20 * 1500
    assert admitted + pool.queued_at_end == pytest.approx(pool.arrived)
    # drained requests that fell under half a request are dropped from the fluid
    assert pool.completed + pool.running_at_end == pytest.approx(admitted, abs=0.5 * 50)
    # the first scale-up is decided within one 5 s interval of the burst ...
    [reaction] = r.burst_reaction_s()
    assert reaction is not None
    assert reaction <= 5
    # ... but the new replicas are ready only 90 s later
    t_up = next(t for t, old, new in pool.decisions if new > old)
    ready_after = [
        t for t, ready in zip(pool.series_t, pool.series_ready, strict=True) if ready > 1
    ]
    assert ready_after[0] >= t_up + 90


def test_the_simulator_drives_the_same_policy_function(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real = simulator.decide

    def spy(**kwargs: object) -> object:
        calls.append(kwargs["now"])  # type: ignore[arg-type]
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(simulator, "decide", spy)
    simulate(
        trace=burst_trace(duration_s=100),
        scalers={"off": ours()},
        model=EngineModel(),
        initial_replicas={"off": 1},
    )
    assert calls == [float(t) for t in range(0, 100, 5)]


def test_keda_baseline_follows_hpa_rules() -> None:
    keda = KedaThreshold()
    sig = PoolSignals(engine_waiting=200, ready_engines=1)
    assert keda.decide(now=0, signals=sig, current=1) == (5, "HPA up: waiting 200")  # +4 limit
    # no waiting: the recommendation is min, applied only after 300 s
    idle = PoolSignals(ready_engines=5)
    assert keda.decide(now=15, signals=idle, current=5)[0] == 5
    assert keda.decide(now=301, signals=idle, current=5)[0] == 1


def test_kubeai_baseline_averages_over_its_window() -> None:
    kubeai = KubeAIAverage()
    for i in range(59):
        kubeai.decide(now=i * 10.0, signals=PoolSignals(engine_running=50), current=1)
    # one sample of 1000 in-flight moves a 60-sample average by ~16 only
    assert kubeai.decide(now=600, signals=PoolSignals(engine_running=1000), current=1)[0] == 1


def test_traces_follow_workloads_md() -> None:
    a1 = a1_diurnal()
    rate = a1.pools[0][2]
    assert rate(0) == pytest.approx(80)
    assert rate(a1.duration_s / 2) == pytest.approx(400)  # peak 5x the trough
    a2 = a2_bursts()
    assert all(b - a == 120 for a, b in a2.bursts)
    assert all(b[0] - a[0] == 1800 for a, b in zip(a2.bursts, a2.bursts[1:], strict=False))
    burst_rate = a2.pools[0][2]
    assert burst_rate(a2.bursts[0][0]) == 10 * burst_rate(0)


def test_cli_prints_table_and_writes_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["simulate-autoscaling", "--traces", "A2", "--startup", "90", "--plots", str(tmp_path)]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "| A2 | 90 s | ours (queue depth) |" in out
    assert "Per-request cross-check" in out
    assert (tmp_path / "autoscaling-a2.png").stat().st_size > 10_000
    assert (tmp_path / "autoscaling-a2-burst.png").exists()


def test_scale_to_zero_and_wake_in_the_fleet() -> None:
    """Idle -> zero after the idle time; the first request held at zero wakes the pool at
    the next decision, and it waits the start-up delay."""

    def rate(t: float) -> float:
        return 5.0 if 1200 <= t < 1260 else 0.0

    trace = Trace("Z", "zero", 2000, (("off", OFF, rate),), bursts=((1200.0, 1260.0),))
    settings = PolicySettings(min_replicas=0, max_replicas=4, scale_to_zero_idle_s=600)
    r = simulate(
        trace=trace,
        scalers={"off": OursScaler(settings)},
        model=EngineModel(startup_s=90),
        initial_replicas={"off": 1},
        seed=3,
    )
    pool = r.pools[0]
    to_zero = [t for t, old, new in pool.decisions if new == 0]
    assert to_zero
    assert 600 <= to_zero[0] < 1200
    wakes = [t for t, old, new in pool.decisions if old == 0 and new > 0]
    assert wakes
    assert 1200 <= wakes[0] <= 1205
    # the held requests waited for the start-up, not for a stabilisation window
    assert 85 <= r.wait_percentile(1.0) <= 100


def test_per_request_replay_agrees_with_the_fluid_model() -> None:
    from nemotron_operator.autoscaler.request_sim import simulate_requests

    trace = burst_trace()
    fluid = simulate(
        trace=trace, scalers={"off": ours()}, model=EngineModel(), initial_replicas={"off": 1}
    )
    each = simulate_requests(
        trace=trace, scalers={"off": ours()}, model=EngineModel(), initial_replicas={"off": 1}
    )
    pool = each.pools[0]
    # same seeded arrival counts; every request admitted or still queued, and finished or running
    assert pool.arrived == fluid.pools[0].arrived
    assert sum(pool.waits.values()) + pool.queued_at_end == pool.arrived
    assert pool.completed + pool.running_at_end == sum(pool.waits.values())
    assert each.burst_reaction_s() == fluid.burst_reaction_s()
    assert each.gpu_hours == pytest.approx(fluid.gpu_hours, rel=0.1)
    assert each.wait_percentile(0.95) == pytest.approx(fluid.wait_percentile(0.95), abs=5)


def test_request_sizes_follow_r2() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    prompt, output = ON.sample(rng, 20_000)
    assert prompt.min() >= 200
    assert prompt.max() <= 2000
    assert output.min() >= 1000
    assert output.max() <= 8000
    assert output.mean() == pytest.approx(ON.output_tokens, rel=0.03)
    _, off_out = OFF.sample(rng, 20_000)
    assert off_out.mean() == pytest.approx(OFF.output_tokens, rel=0.03)

"""The autoscaling part of the CR status: ``controller.autoscaling.status_patch`` (what the
per-CR loop writes after a step) and ``controller.status.compute_status`` keeping it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.api.models import NemotronDeploymentStatus
from nemotron_operator.autoscaler.loop import PoolOutcome
from nemotron_operator.controller.autoscaling import status_patch
from nemotron_operator.controller.status import DeploymentObservation, compute_status

READY = DeploymentObservation(exists=True, desired=1, ready=1, updated=1, total=1)


def _outcome(**overrides: Any) -> PoolOutcome:
    args: dict[str, Any] = {
        "pool": "on",
        "deployment": "n-on",
        "current": 1,
        "desired": 3,
        "reason": "scale up: demand 9, 2 + 1 per replica",
        "time": 1_800_000_000.0,
        "scaled": True,
    }
    args.update(overrides)
    return PoolOutcome(**args)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch, as the API server applies it."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = _merge(out.get(key) or {}, value)
        else:
            out[key] = value
    return out


def test_first_decision_is_written_in_the_api_shape() -> None:
    patch = status_patch(None, [_outcome()])
    written = _merge({}, patch)["pools"]["on"]["autoscaling"]
    assert written == {
        "desiredReplicas": 3,
        "currentReplicas": 1,
        "lastDecision": "scale up: demand 9, 2 + 1 per replica",
        "lastDecisionTime": "2027-01-15T08:00:00+00:00",
    }
    status = NemotronDeploymentStatus.model_validate(_merge({}, patch))
    assert status.pools.on.autoscaling is not None
    assert status.pools.on.autoscaling.desired_replicas == 3


def test_same_decision_later_writes_nothing_a_new_one_does() -> None:
    status = _merge({}, status_patch(None, [_outcome()]))
    assert status_patch(status, [_outcome(time=1_800_000_005.0)]) == {}
    held = _outcome(current=3, desired=3, reason="hold: demand 9", scaled=False)
    assert status_patch(status, [held])["pools"]["on"]["autoscaling"]["lastDecision"] == (
        "hold: demand 9"
    )


def test_an_error_is_reported_and_cleared() -> None:
    failed = _merge({}, status_patch(None, [_outcome(error="409 conflict", scaled=False)]))
    assert failed["pools"]["on"]["autoscaling"]["error"] == "409 conflict"
    cleared = _merge(failed, status_patch(failed, [_outcome()]))
    assert "error" not in cleared["pools"]["on"]["autoscaling"]


def test_refresh_keeps_the_autoscaling_status() -> None:
    previous = _merge({}, status_patch(None, [_outcome()]))
    new = compute_status(
        generation=1,
        model="nvidia/x",
        endpoint="http://n.ns.svc.cluster.local/v1",
        pools={"on": READY, "off": None},
        router=READY,
        problems=[],
        previous=previous,
        now="2026-01-01T00:00:00Z",
    )
    assert new["pools"]["on"]["autoscaling"] == previous["pools"]["on"]["autoscaling"]
    assert "autoscaling" not in new["pools"]["off"]


decisions = st.builds(
    _outcome,
    pool=st.sampled_from(["on", "off"]),
    current=st.integers(0, 8),
    desired=st.integers(0, 8),
    reason=st.sampled_from(["hold: x", "scale up: y", "scale down: z", "wake: 1 held at zero"]),
    time=st.floats(1e9, 2e9),
    error=st.none() | st.just("boom"),
)


@given(st.lists(st.lists(decisions, max_size=2, unique_by=lambda o: o.pool), max_size=6))
def test_writing_the_patch_makes_the_next_one_empty(steps: list[list[PoolOutcome]]) -> None:
    status: dict[str, Any] = {}
    for outcomes in steps:
        status = _merge(status, status_patch(status, outcomes))
        last = {o.pool: o for o in outcomes}  # the later outcome of a pool wins
        assert status_patch(status, list(last.values())) == {}

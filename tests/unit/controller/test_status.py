"""Status computation: conditions, reasons, per-pool replicas, transition times."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.controller.status import (
    DeploymentObservation,
    Problem,
    compute_status,
    observe_deployment,
    status_differs,
)

READY = DeploymentObservation(exists=True, desired=1, ready=1, updated=1, total=1)


def _status(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "generation": 3,
        "model": "nvidia/x",
        "endpoint": "http://n.ns.svc.cluster.local/v1",
        "pools": {"on": READY, "off": READY},
        "router": READY,
        "problems": [],
        "previous": None,
        "now": "2026-01-01T00:00:00Z",
    }
    args.update(overrides)
    return compute_status(**args)


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_all_ready() -> None:
    status = _status()
    conditions = _conditions(status)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "AllReplicasReady"
    assert conditions["Progressing"]["status"] == "False"
    assert conditions["Degraded"]["status"] == "False"
    assert status["observedGeneration"] == 3
    assert status["pools"]["on"]["replicas"] == "1/1"


def test_pool_not_ready_is_progressing() -> None:
    starting = DeploymentObservation(exists=True, desired=2, ready=1, updated=2, total=2)
    conditions = _conditions(_status(pools={"on": starting, "off": None}))
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "PoolNotReady"
    assert "pool on: 1/2" in conditions["Ready"]["message"]
    assert conditions["Progressing"]["status"] == "True"


def test_scaled_to_zero_pool_counts_as_ready() -> None:
    zero = DeploymentObservation(exists=True, desired=0, ready=0, updated=0, total=0)
    status = _status(pools={"on": zero, "off": READY})
    assert _conditions(status)["Ready"]["status"] == "True"
    assert status["pools"]["on"]["replicas"] == "0/0"


def test_problem_is_degraded_with_its_reason() -> None:
    problem = Problem("SecretNotFound", "Secret 'hf' (spec.hfTokenSecretRef) not found")
    conditions = _conditions(
        _status(problems=[problem], router=DeploymentObservation(exists=True, desired=1))
    )
    assert conditions["Degraded"]["status"] == "True"
    assert conditions["Degraded"]["reason"] == "SecretNotFound"
    assert "spec.hfTokenSecretRef" in conditions["Degraded"]["message"]
    assert conditions["Ready"]["reason"] == "SecretNotFound"


def test_transition_time_kept_while_status_holds() -> None:
    first = _status()
    second = _status(previous=first, now="2026-01-02T00:00:00Z")
    assert _conditions(second)["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert not status_differs(first, second)
    broken = _status(
        previous=first, now="2026-01-03T00:00:00Z", router=DeploymentObservation(exists=False)
    )
    assert _conditions(broken)["Ready"]["lastTransitionTime"] == "2026-01-03T00:00:00Z"
    assert status_differs(first, broken)


def test_observe_deployment() -> None:
    obs = observe_deployment(
        {
            "metadata": {"generation": 2},
            "spec": {"replicas": 3},
            "status": {
                "observedGeneration": 1,
                "readyReplicas": 2,
                "updatedReplicas": 3,
                "replicas": 3,
            },
        }
    )
    assert obs == DeploymentObservation(
        exists=True, desired=3, ready=2, updated=3, total=3, up_to_date_generation=False
    )
    assert observe_deployment(None).exists is False


counts = st.integers(0, 5)


@given(desired=counts, ready=counts, updated=counts)
def test_ready_iff_every_replica_ready(desired: int, ready: int, updated: int) -> None:
    obs = DeploymentObservation(
        exists=True, desired=desired, ready=min(ready, desired), updated=updated, total=desired
    )
    ready_status = _conditions(_status(pools={"on": obs, "off": None}))["Ready"]["status"]
    assert (ready_status == "True") == (min(ready, desired) >= desired)


def test_refresher_picks_not_ready_live_crs() -> None:
    from nemotron_operator.controller.refresher import needs_refresh

    ready = {"metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    not_ready = {"metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    deleting = {"metadata": {"deletionTimestamp": "x"}, "status": {}}
    assert not needs_refresh(ready)
    assert needs_refresh(not_ready)
    assert needs_refresh({"metadata": {}})
    assert not needs_refresh(deleting)


def test_refresher_backoff_doubles_while_stuck_and_resets_on_change() -> None:
    from nemotron_operator.controller.refresher import Backoff

    backoff = Backoff(base=20, ceiling=80)
    key = ("ns", "n")
    assert backoff.due(key, "s1", now=0)
    waits = []
    now = 0.0
    for _ in range(5):
        assert backoff.due(key, "s1", now)
        backoff.done(key, "s1", "s1", now)
        entry_time = next(t for t in range(int(now), int(now) + 1000) if backoff.due(key, "s1", t))
        waits.append(entry_time - now)
        now = float(entry_time)
    assert waits == [20, 40, 80, 80, 80]
    # Another writer changed the status: due at once, and the wait starts over.
    assert backoff.due(key, "s2", now + 1)
    backoff.done(key, "s2", "s2", now + 1)
    assert not backoff.due(key, "s2", now + 20)
    assert backoff.due(key, "s2", now + 21)

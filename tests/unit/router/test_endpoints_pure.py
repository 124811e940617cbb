"""Which pods are endpoints, and how watch events change the set (router.endpoints)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.router.endpoints import apply_event, pod_url, ready_urls


def pod(
    name: str,
    ip: str | None = "10.0.0.1",
    *,
    ready: bool = True,
    deleting: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-24T08:00:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    return {"metadata": metadata, "status": status}


def test_pod_url_rules() -> None:
    assert pod_url(pod("a"), 8000) == "http://10.0.0.1:8000"
    assert pod_url(pod("a", "fd00::1"), 8000) == "http://[fd00::1]:8000"
    assert pod_url(pod("a", ready=False), 8000) is None
    assert pod_url(pod("a", deleting=True), 8000) is None
    assert pod_url(pod("a", None), 8000) is None
    assert pod_url(pod("a", phase="Succeeded"), 8000) is None
    assert pod_url({"metadata": {"name": "x"}}, 8000) is None


def test_events_add_update_and_remove() -> None:
    state = apply_event({}, "ADDED", pod("a", "10.0.0.1", ready=False), 8000)
    assert state == {}
    state = apply_event(state, "MODIFIED", pod("a", "10.0.0.1"), 8000)
    assert ready_urls(state) == ["http://10.0.0.1:8000"]
    state = apply_event(state, "ADDED", pod("b", "10.0.0.2"), 8000)
    state = apply_event(state, "MODIFIED", pod("a", "10.0.0.1", deleting=True), 8000)
    assert ready_urls(state) == ["http://10.0.0.2:8000"]
    state = apply_event(state, "DELETED", pod("b", "10.0.0.2"), 8000)
    assert state == {}


events = st.lists(
    st.tuples(
        st.sampled_from(["ADDED", "MODIFIED", "DELETED"]),
        st.sampled_from(["a", "b", "c"]),
        st.booleans(),
        st.booleans(),
    ),
    max_size=30,
)


@given(events=events)
def test_set_equals_last_state_of_each_pod(events: list[tuple[str, str, bool, bool]]) -> None:
    state: dict[str, str] = {}
    last: dict[str, tuple[str, bool, bool]] = {}
    for kind, name, ready, deleting in events:
        state = apply_event(
            state, kind, pod(name, f"10.0.0.{ord(name)}", ready=ready, deleting=deleting), 8000
        )
        last[name] = (kind, ready, deleting)
    expected = {
        name
        for name, (kind, ready, deleting) in last.items()
        if kind != "DELETED" and ready and not deleting
    }
    assert set(state) == expected

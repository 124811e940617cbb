"""The Lease rule: renew your own, take an expired or empty one, wait for a live one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.controller.leader import lease_decision

NOW = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)


def _spec(holder: str, age: float, duration: int = 15) -> dict[str, object]:
    renewed = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": duration}


def test_examples() -> None:
    assert lease_decision(None, identity="a", now=NOW) == "acquire"
    assert lease_decision(_spec("a", 100), identity="a", now=NOW) == "renew"
    assert lease_decision(_spec("b", 3), identity="a", now=NOW) == "wait"
    assert lease_decision(_spec("b", 16), identity="a", now=NOW) == "acquire"
    assert lease_decision({"holderIdentity": ""}, identity="a", now=NOW) == "acquire"


@given(age=st.integers(0, 100), duration=st.integers(1, 60))
def test_two_candidates_never_both_act_on_a_live_lease(age: int, duration: int) -> None:
    spec = _spec("a", age, duration)
    other = lease_decision(spec, identity="b", now=NOW)
    assert lease_decision(spec, identity="a", now=NOW) == "renew"
    assert other == ("acquire" if age >= duration else "wait")

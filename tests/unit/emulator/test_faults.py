"""Parsing NEMOTRON_EMULATOR_FAULTS and counting injected failures."""

from __future__ import annotations

import pytest

from nemotron_operator.engine.emulator.faults import FaultPlan, FaultState, parse_faults


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        ("", FaultPlan()),
        ("fail:3", FaultPlan(fail_requests=3)),
        ("stall", FaultPlan(stall=True)),
        ("die-mid-stream:5", FaultPlan(die_after_chunks=5)),
        (" fail:1 , stall ", FaultPlan(fail_requests=1, stall=True)),
    ],
)
def test_parse(text: str, plan: FaultPlan) -> None:
    assert parse_faults(text) == plan


@pytest.mark.parametrize("text", ["boom", "fail:x", "fail:-1", "stall:2"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        parse_faults(text)


def test_fail_counts_down() -> None:
    state = FaultState(FaultPlan(fail_requests=2))
    assert [state.take_failure() for _ in range(4)] == [True, True, False, False]

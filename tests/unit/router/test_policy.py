"""Sampling defaults, the reasoning-on temperature rule and the token budget (router.policy)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.api.routerconfig import PoolRoute
from nemotron_operator.router.errors import RouterError
from nemotron_operator.router.policy import apply_policy

ON = PoolRoute(name="on", temperature=0.6, top_p=0.95, max_tokens=32768)
OFF = PoolRoute(name="off", temperature=0.0, top_p=1.0, max_tokens=8192)


def test_defaults_fill_only_what_is_missing() -> None:
    assert apply_policy({}, ON, "on") == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
    assert apply_policy({}, OFF, "off") == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8192}
    body = {"temperature": 0.3, "top_p": 0.5, "max_tokens": 10}
    assert apply_policy(body, ON, "on") == body
    assert apply_policy({"temperature": None}, OFF, "off")["temperature"] == 0.0


def test_zero_temperature_with_reasoning_on_is_replaced() -> None:
    assert apply_policy({"temperature": 0}, ON, "on")["temperature"] == 0.6
    allowed = ON.model_copy(update={"allow_zero_temperature": True})
    assert apply_policy({"temperature": 0}, allowed, "on")["temperature"] == 0
    assert apply_policy({"temperature": 0}, OFF, "off")["temperature"] == 0


def test_budget_clamps_each_field_present() -> None:
    out = apply_policy({"max_tokens": 99999, "max_completion_tokens": 100}, OFF, "off")
    assert out["max_tokens"] == 8192
    assert out["max_completion_tokens"] == 100
    out = apply_policy({"max_completion_tokens": 50000}, OFF, "off")
    assert out["max_completion_tokens"] == 8192
    assert "max_tokens" not in out


@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": "5"},
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"temperature": "hot"},
        {"top_p": True},
    ],
)
def test_bad_values_are_400(body: dict[str, Any]) -> None:
    with pytest.raises(RouterError) as info:
        apply_policy(body, ON, "on")
    assert info.value.status == 400


@given(
    temperature=st.one_of(st.none(), st.floats(0, 2)),
    top_p=st.one_of(st.none(), st.floats(0.01, 1)),
    max_tokens=st.one_of(st.none(), st.integers(1, 10**6)),
    budget=st.integers(1, 10**5),
    mode=st.sampled_from(["on", "off"]),
    allow_zero=st.booleans(),
)
def test_policy_properties(
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    budget: int,
    mode: str,
    allow_zero: bool,
) -> None:
    pool = PoolRoute(
        name=mode,  # type: ignore[arg-type]
        temperature=0.6 if mode == "on" else 0.0,
        top_p=0.95,
        max_tokens=budget,
        allow_zero_temperature=allow_zero,
    )
    body: dict[str, Any] = {}
    if temperature is not None:
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    out = apply_policy(body, pool, mode)  # type: ignore[arg-type]
    # The budget is always set and never exceeded; a smaller client value is kept.
    assert out["max_tokens"] == min(max_tokens or budget, budget)
    # Reasoning on never runs greedy unless the pool allows it.
    if mode == "on" and not allow_zero:
        assert out["temperature"] > 0
    # A client's own non-zero sampling choice is never overridden.
    if temperature is not None and temperature > 0:
        assert out["temperature"] == temperature
    if top_p is not None:
        assert out["top_p"] == top_p
    # Idempotent: applying the policy twice changes nothing more.
    assert apply_policy(out, pool, mode) == out  # type: ignore[arg-type]

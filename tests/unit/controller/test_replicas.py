"""The replica decision: set on create, clamp into [min, max], otherwise leave it alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.api.models import OnPoolSpec
from nemotron_operator.controller.replicas import initial_replicas, replicas_to_set


def _pool(low: int, high: int, autoscaling: bool = False) -> OnPoolSpec:
    return OnPoolSpec.model_validate(
        {"replicas": {"min": low, "max": high}, "autoscaling": {"enabled": autoscaling}}
    )


bounds = st.tuples(st.integers(0, 20), st.integers(0, 20)).map(sorted)


@given(b=bounds, current=st.integers(0, 40), autoscaling=st.booleans())
def test_never_fights_a_scaler_within_bounds(b: list[int], current: int, autoscaling: bool) -> None:
    pool = _pool(b[0], b[1], autoscaling)
    decided = replicas_to_set(pool, current)
    if b[0] <= current <= b[1]:
        assert decided is None
    else:
        assert decided is not None
        assert b[0] <= decided <= b[1]
        assert decided == (b[0] if current < b[0] else b[1])


@given(b=bounds, autoscaling=st.booleans())
def test_initial_within_bounds(b: list[int], autoscaling: bool) -> None:
    pool = _pool(b[0], b[1], autoscaling)
    initial = replicas_to_set(pool, None)
    assert initial == initial_replicas(pool)
    assert b[0] <= initial <= b[1]


def test_initial_examples() -> None:
    assert initial_replicas(_pool(0, 3, autoscaling=True)) == 0
    assert initial_replicas(_pool(0, 3, autoscaling=False)) == 1
    assert initial_replicas(_pool(2, 3)) == 2
    assert initial_replicas(_pool(0, 0)) == 0

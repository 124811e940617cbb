"""A pool's policy applied to one request: sampling defaults where the client set none, the
model card's rule against greedy decoding in reasoning-on mode, and the output-token budget.
Pure; ``server`` calls ``apply_policy`` after ``mode.with_mode_toggle``.

- ``temperature`` / ``top_p`` absent (or null): the pool's values (model card: on 0.6 / 0.95,
  off greedy).
- Reasoning on and ``temperature`` 0: replaced by the pool's temperature (the card strongly
  advises against greedy decoding with reasoning on) unless the pool allows it.
- ``max_tokens`` and ``max_completion_tokens``: each one present is clamped to the pool budget;
  when neither is present ``max_tokens`` is set to the budget.
"""

from __future__ import annotations

from typing import Any

from nemotron_operator.api.routerconfig import PoolRoute
from nemotron_operator.router.errors import RouterError
from nemotron_operator.router.mode import Mode

__all__ = ["BUDGET_FIELDS", "apply_policy"]

BUDGET_FIELDS = ("max_tokens", "max_completion_tokens")


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RouterError(400, f"{name} must be a number", code="invalid_value", param=name)
    return float(value)


def _budget(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RouterError(
            400, f"{name} must be a positive integer", code="invalid_value", param=name
        )
    return value


def apply_policy(body: dict[str, Any], pool: PoolRoute, mode: Mode) -> dict[str, Any]:
    """A copy of ``body`` with the pool's sampling defaults and budget applied."""
    out = dict(body)
    temperature = _number(out, "temperature")
    if temperature is None or (
        mode == "on" and temperature == 0.0 and not pool.allow_zero_temperature
    ):
        out["temperature"] = pool.temperature
    if _number(out, "top_p") is None:
        out["top_p"] = pool.top_p
    present = False
    for name in BUDGET_FIELDS:
        value = _budget(out, name)
        if value is not None:
            present = True
            if value > pool.max_tokens:
                out[name] = pool.max_tokens
    if not present:
        out["max_tokens"] = pool.max_tokens
    return out

"""Faults the emulator injects for tests (``NEMOTRON_EMULATOR_FAULTS``), parsed into a plan.

Syntax: comma-separated items --
``fail:N`` (the first N completion requests answer 500),
``stall`` (completion requests are accepted and never answered),
``die-mid-stream:N`` (the process exits abruptly after sending N chunks of a streaming answer).
``server`` consults the plan; ``FaultState`` counts what has been injected so far.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FaultPlan", "FaultState", "parse_faults"]


@dataclass(frozen=True)
class FaultPlan:
    fail_requests: int = 0
    stall: bool = False
    die_after_chunks: int | None = None


def _count(item: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"fault {item!r}: {value!r} is not a whole number") from None
    if number < 0:
        raise ValueError(f"fault {item!r}: the count must not be negative")
    return number


def parse_faults(text: str) -> FaultPlan:
    """``"fail:3,die-mid-stream:5"`` -> a plan; raise ``ValueError`` for an unknown fault."""
    plan = FaultPlan()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, value = item.partition(":")
        if name == "fail":
            plan = FaultPlan(_count(item, value or "1"), plan.stall, plan.die_after_chunks)
        elif name == "stall" and not value:
            plan = FaultPlan(plan.fail_requests, True, plan.die_after_chunks)
        elif name == "die-mid-stream":
            plan = FaultPlan(plan.fail_requests, plan.stall, _count(item, value or "1"))
        else:
            raise ValueError(f"unknown fault {item!r} (known: fail:N, stall, die-mid-stream:N)")
    return plan


class FaultState:
    """The faults still to inject: ``fail:N`` fails the first N requests, then no more."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._failed = 0

    def take_failure(self) -> bool:
        """True when this request is one of the N to fail (counts it)."""
        if self._failed < self.plan.fail_requests:
            self._failed += 1
            return True
        return False

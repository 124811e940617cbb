"""The policy's remembered state, and its serialised form kept in the CR.

``policy.decide`` takes a ``PolicyState`` and returns the next one; ``loop`` persists it with
``to_dict`` (JSON-safe, stored in the CR's status or an annotation) and restores it with
``from_dict`` after an operator restart, so the stabilisation windows survive and a restart
never shortens them (a missing or unreadable state starts a fresh window: no scale-down).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["STATE_VERSION", "PolicyState"]

STATE_VERSION = 1


@dataclass(frozen=True)
class PolicyState:
    """Everything the policy remembers between two decisions of one pool (times in seconds)."""

    # When the current run of uninterrupted observations began (None: never observed).
    observing_since: float | None = None
    # When the last decision was taken: a gap of several intervals restarts the window.
    last_time: float | None = None
    # Scale-down recommendations inside the window, oldest first: (time, replicas).
    down_recommendations: tuple[tuple[float, int], ...] = ()
    # Scale-up recommendations inside the up-stabilisation window: (time, replicas).
    up_recommendations: tuple[tuple[float, int], ...] = ()
    # Decisions in a row that wanted fewer replicas.
    down_streak: int = 0
    # Since when the pool has had no request at all (for scale to zero).
    idle_since: float | None = None
    # Learnt concurrency per replica at saturation (None: use the settings' slots).
    capacity_per_replica: float | None = None
    # Learnt completions/s of one saturated replica, and the last arrival-rate estimate.
    service_rate_per_replica: float | None = None
    arrival_rate: float | None = None
    # The previous observation, for rates: completed counter, demand, ready engines.
    last_completed: float | None = None
    last_demand: float | None = None
    last_ready: int | None = None
    # The last decision, for the status.
    last_desired: int | None = None
    last_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for the CR's status or an annotation."""
        return {
            "version": STATE_VERSION,
            "observingSince": self.observing_since,
            "lastTime": self.last_time,
            "down": [[t, r] for t, r in self.down_recommendations],
            "up": [[t, r] for t, r in self.up_recommendations],
            "downStreak": self.down_streak,
            "idleSince": self.idle_since,
            "capacityPerReplica": self.capacity_per_replica,
            "serviceRatePerReplica": self.service_rate_per_replica,
            "arrivalRate": self.arrival_rate,
            "lastCompleted": self.last_completed,
            "lastDemand": self.last_demand,
            "lastReady": self.last_ready,
            "lastDesired": self.last_desired,
            "lastReason": self.last_reason,
        }

    @classmethod
    def from_dict(cls, data: object) -> PolicyState:
        """Restore a state; anything unreadable gives a fresh state (which never scales down)."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return cls()
        try:
            return cls(
                observing_since=_opt_float(data.get("observingSince")),
                last_time=_opt_float(data.get("lastTime")),
                down_recommendations=tuple((float(t), int(r)) for t, r in data.get("down", [])),
                up_recommendations=tuple((float(t), int(r)) for t, r in data.get("up", [])),
                down_streak=int(data.get("downStreak", 0)),
                idle_since=_opt_float(data.get("idleSince")),
                capacity_per_replica=_opt_float(data.get("capacityPerReplica")),
                service_rate_per_replica=_opt_float(data.get("serviceRatePerReplica")),
                arrival_rate=_opt_float(data.get("arrivalRate")),
                last_completed=_opt_float(data.get("lastCompleted")),
                last_demand=_opt_float(data.get("lastDemand")),
                last_ready=None if data.get("lastReady") is None else int(data["lastReady"]),
                last_desired=None if data.get("lastDesired") is None else int(data["lastDesired"]),
                last_reason=str(data.get("lastReason", "")),
            )
        except (TypeError, ValueError):
            return cls()


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    return float(value)

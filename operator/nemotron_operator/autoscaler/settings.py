"""The autoscaling policy's settings: a small frozen dataclass, independent of the API models.

``policy`` reads only ``PolicySettings``; ``settings_from_spec`` builds one from a pool's spec
(``spec.pools.reasoningOn|reasoningOff`` of the NemotronDeployment, see ``api.models``) so the
policy does not depend on the shape of the CRD. ``loop`` and ``simulator`` use both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_SLOTS_PER_REPLICA", "PolicySettings", "settings_from_spec"]

# vLLM's default ``--max-num-seqs``: the most sequences one engine runs at once. The policy
# starts from this and learns the real figure (KV cache limits it for long requests).
DEFAULT_SLOTS_PER_REPLICA = 256


@dataclass(frozen=True)
class PolicySettings:
    """What the policy needs to know about one pool (times in seconds)."""

    min_replicas: int = 1
    max_replicas: int = 4
    target_queue_per_replica: float = 4.0
    scale_up_stabilization_s: float = 0.0
    scale_down_stabilization_s: float = 300.0
    scale_down_consecutive: int = 3
    scale_to_zero_idle_s: float = 600.0
    interval_s: float = 5.0
    # Concurrency one replica serves before requests wait (vLLM ``max_num_seqs``).
    slots_per_replica: float = DEFAULT_SLOTS_PER_REPLICA
    # A scale-down sizes the pool so that replicas run at most this share of their slots; below
    # 1 it leaves headroom so that the next scale-up condition is not met at once (hysteresis:
    # this is what keeps a constant load from oscillating).
    scale_down_utilization: float = 0.8

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < max(self.min_replicas, 1):
            raise ValueError(f"bad replica bounds {self.min_replicas}..{self.max_replicas}")
        if self.target_queue_per_replica <= 0 or self.slots_per_replica < 1:
            raise ValueError("target_queue_per_replica and slots_per_replica must be positive")
        if not 0 < self.scale_down_utilization <= 1:
            raise ValueError("scale_down_utilization must be in (0, 1]")
        if self.interval_s <= 0 or self.scale_down_consecutive < 1:
            raise ValueError("interval_s must be > 0 and scale_down_consecutive >= 1")


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    """Read a field by its Python or camelCase name from a pydantic model or a plain dict."""
    for name in names:
        if isinstance(obj, dict):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return default


def settings_from_spec(pool: Any, *, slots_per_replica: float | None = None) -> PolicySettings:
    """Build the policy's settings from a pool spec (pydantic model or its dict form).

    Reads ``replicas.min/max`` and ``autoscaling.*``; absent fields take the CRD's defaults.
    """
    replicas = _get(pool, "replicas", default={}) or {}
    auto = _get(pool, "autoscaling", default={}) or {}
    min_r = int(_get(replicas, "min", "min_replicas", default=1))
    max_r = int(_get(replicas, "max", "max_replicas", default=max(min_r, 1)))
    return PolicySettings(
        min_replicas=min_r,
        max_replicas=max(max_r, min_r, 1),
        target_queue_per_replica=float(
            _get(auto, "target_queue_per_replica", "targetQueuePerReplica", default=4)
        ),
        scale_up_stabilization_s=float(
            _get(auto, "scale_up_stabilization_seconds", "scaleUpStabilizationSeconds", default=0)
        ),
        scale_down_stabilization_s=float(
            _get(
                auto,
                "scale_down_stabilization_seconds",
                "scaleDownStabilizationSeconds",
                default=300,
            )
        ),
        scale_down_consecutive=int(
            _get(auto, "scale_down_consecutive", "scaleDownConsecutive", default=3)
        ),
        scale_to_zero_idle_s=float(
            _get(auto, "scale_to_zero_idle_seconds", "scaleToZeroIdleSeconds", default=600)
        ),
        interval_s=float(_get(auto, "interval_seconds", "intervalSeconds", default=5)),
        slots_per_replica=float(slots_per_replica or DEFAULT_SLOTS_PER_REPLICA),
    )

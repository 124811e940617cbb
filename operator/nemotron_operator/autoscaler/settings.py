"""The autoscaling policy's settings: a small frozen dataclass, independent of the API models.

``policy`` reads only ``PolicySettings``; ``settings_from_pool`` builds one from a pool's spec
(``spec.pools.reasoningOn|reasoningOff`` of the NemotronDeployment, ``api.models``) so the
policy does not depend on the shape of the CRD. ``loop`` and ``simulator`` use both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nemotron_operator.api.models import NemotronDeploymentSpec, PoolSpec

__all__ = [
    "DEFAULT_SLOTS_PER_REPLICA",
    "PolicySettings",
    "builtin_autoscaled_pools",
    "settings_from_pool",
    "slots_from_engine_args",
]

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
    # A scale-up sizes the pool to drain the queue it sees within about this long.
    backlog_drain_s: float = 60.0

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < max(self.min_replicas, 1):
            raise ValueError(f"bad replica bounds {self.min_replicas}..{self.max_replicas}")
        if self.target_queue_per_replica <= 0 or self.slots_per_replica < 1:
            raise ValueError("target_queue_per_replica and slots_per_replica must be positive")
        if not 0 < self.scale_down_utilization <= 1:
            raise ValueError("scale_down_utilization must be in (0, 1]")
        if self.interval_s <= 0 or self.scale_down_consecutive < 1:
            raise ValueError("interval_s must be > 0 and scale_down_consecutive >= 1")


def slots_from_engine_args(engine_args: Sequence[str]) -> float:
    """``--max-num-seqs`` from a pool's extra vLLM args, else vLLM's default."""
    for i, arg in enumerate(engine_args):
        if arg.startswith("--max-num-seqs="):
            return float(arg.split("=", 1)[1])
        if arg == "--max-num-seqs" and i + 1 < len(engine_args):
            return float(engine_args[i + 1])
    return float(DEFAULT_SLOTS_PER_REPLICA)


def settings_from_pool(pool: PoolSpec) -> PolicySettings:
    """Build the policy's settings from a pool's spec (``replicas`` and ``autoscaling``)."""
    auto = pool.autoscaling
    return PolicySettings(
        min_replicas=pool.replicas.min,
        max_replicas=max(pool.replicas.max, pool.replicas.min, 1),
        target_queue_per_replica=float(auto.target_queue_per_replica),
        scale_up_stabilization_s=float(auto.scale_up_stabilization_seconds),
        scale_down_stabilization_s=float(auto.scale_down_stabilization_seconds),
        scale_down_consecutive=auto.scale_down_consecutive,
        scale_to_zero_idle_s=float(auto.scale_to_zero_idle_seconds),
        interval_s=float(auto.interval_seconds),
        slots_per_replica=slots_from_engine_args(pool.engine_args),
    )


def builtin_autoscaled_pools(spec: NemotronDeploymentSpec) -> dict[str, PolicySettings]:
    """Pools (``on``/``off``) that the operator's own loop scales, with their settings.

    A pool that is disabled, not autoscaled, or left to KEDA (``engine: keda``) is absent:
    the loop never touches its replicas.
    """
    out: dict[str, PolicySettings] = {}
    for name, pool in (("on", spec.pools.reasoning_on), ("off", spec.pools.reasoning_off)):
        if pool.enabled and pool.autoscaling.enabled and pool.autoscaling.engine == "builtin":
            out[name] = settings_from_pool(pool)
    return out

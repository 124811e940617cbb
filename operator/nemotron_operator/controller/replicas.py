"""When the operator sets a pool Deployment's replica count, and to what. Pure.

The count belongs to whoever scales the pool (the autoscaler through ``/scale``, or
``kubectl scale``). The operator sets it only when it creates the Deployment, and when the
current count lies outside ``replicas.min .. replicas.max`` (after the user narrowed them);
otherwise it leaves it alone, so it never fights a scaler.
"""

from __future__ import annotations

from nemotron_operator.api.models import PoolSpec

__all__ = ["initial_replicas", "replicas_to_set"]


def initial_replicas(pool: PoolSpec) -> int:
    """The count a new pool Deployment starts with.

    With autoscaling on, ``min`` (possibly 0: the router wakes the pool). Without it, at least
    one replica when ``max`` allows, since nothing else would ever scale the pool up.
    """
    bounds = pool.replicas
    if pool.autoscaling.enabled:
        return bounds.min
    return max(bounds.min, min(1, bounds.max))


def replicas_to_set(pool: PoolSpec, current: int | None) -> int | None:
    """The count to set on an existing Deployment, or ``None`` to leave ``current`` alone."""
    if current is None:
        return initial_replicas(pool)
    bounds = pool.replicas
    if current < bounds.min:
        return bounds.min
    if current > bounds.max:
        return bounds.max
    return None

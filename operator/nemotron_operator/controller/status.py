"""The NemotronDeployment status as a pure function of what the operator observed: the
Deployments of the pools and the router, and the problems found while reconciling (a failed
apply, a missing Secret, engine pods the scheduler cannot place). ``controller.reconcile``
gathers the observations and writes the result only when it differs from the current status.

Conditions (metav1.Condition shape): ``Ready`` (the router serves and every enabled pool has
all its replicas ready; a pool scaled to zero counts as ready, the router wakes it),
``Progressing`` (a rollout or scale is under way), ``Degraded`` (something needs a human).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemotron_operator.controller.naming import Mode

__all__ = [
    "DeploymentObservation",
    "Problem",
    "compute_status",
    "observe_deployment",
    "status_differs",
]


@dataclass(frozen=True)
class DeploymentObservation:
    """The parts of a Deployment that status needs."""

    exists: bool
    desired: int = 0
    ready: int = 0
    updated: int = 0
    total: int = 0
    up_to_date_generation: bool = True


@dataclass(frozen=True)
class Problem:
    """Something that keeps the CR from working: a machine reason and a human message."""

    reason: str
    message: str


def observe_deployment(obj: dict[str, Any] | None) -> DeploymentObservation:
    if obj is None:
        return DeploymentObservation(exists=False)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    return DeploymentObservation(
        exists=True,
        desired=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        total=int(status.get("replicas") or 0),
        up_to_date_generation=int(status.get("observedGeneration") or 0) >= generation,
    )


def _rolling(obs: DeploymentObservation) -> bool:
    return obs.exists and (
        not obs.up_to_date_generation
        or obs.updated < obs.desired
        or obs.ready < obs.desired
        or obs.total > obs.desired
    )


def _condition(
    kind: str,
    status: bool,
    reason: str,
    message: str,
    *,
    previous: dict[str, dict[str, Any]],
    generation: int,
    now: str,
) -> dict[str, Any]:
    value = "True" if status else "False"
    before = previous.get(kind)
    since = now
    if before is not None and before.get("status") == value:
        since = str(before.get("lastTransitionTime") or now)
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def compute_status(
    *,
    generation: int,
    model: str,
    endpoint: str,
    pools: dict[Mode, DeploymentObservation | None],
    router: DeploymentObservation,
    problems: list[Problem],
    previous: dict[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The whole status object (wire names). ``pools[mode]`` is None for a disabled pool."""
    before = {c.get("type", ""): c for c in (previous or {}).get("conditions") or []}
    pool_status: dict[str, Any] = {}
    not_ready: list[str] = []
    rolling: list[str] = []
    modes: tuple[Mode, Mode] = ("on", "off")
    for mode in modes:
        obs = pools.get(mode)
        if obs is None:
            pool_status[mode] = {
                "enabled": False,
                "desiredReplicas": 0,
                "readyReplicas": 0,
                "replicas": "-",
            }
            continue
        pool_status[mode] = {
            "enabled": True,
            "desiredReplicas": obs.desired,
            "readyReplicas": obs.ready,
            "replicas": f"{obs.ready}/{obs.desired}",
        }
        # The autoscaling loop owns this part (controller.autoscaling.status_patch): kept as
        # it is, so a refresh neither drops it nor sees a difference that is not there.
        autoscaling = (((previous or {}).get("pools") or {}).get(mode) or {}).get("autoscaling")
        if autoscaling is not None:
            pool_status[mode]["autoscaling"] = autoscaling
        if not obs.exists or obs.ready < obs.desired:
            not_ready.append(f"pool {mode}: {obs.ready}/{obs.desired} replicas ready")
        if not obs.exists or _rolling(obs):
            rolling.append(f"pool {mode}")
    if not router.exists or router.ready < 1:
        not_ready.insert(0, f"router: {router.ready}/{router.desired} replicas ready")
    if not router.exists or _rolling(router):
        rolling.append("router")

    if problems:
        degraded = _condition(
            "Degraded",
            True,
            problems[0].reason,
            "; ".join(p.message for p in problems),
            previous=before,
            generation=generation,
            now=now,
        )
    else:
        degraded = _condition(
            "Degraded",
            False,
            "AsExpected",
            "no problems found",
            previous=before,
            generation=generation,
            now=now,
        )
    if rolling:
        progressing = _condition(
            "Progressing",
            True,
            "RollingOut",
            "updating: " + ", ".join(rolling),
            previous=before,
            generation=generation,
            now=now,
        )
    else:
        progressing = _condition(
            "Progressing",
            False,
            "Stable",
            "every Deployment is up to date",
            previous=before,
            generation=generation,
            now=now,
        )
    if not_ready:
        reason = (
            problems[0].reason
            if problems
            else ("RouterNotReady" if not_ready[0].startswith("router") else "PoolNotReady")
        )
        ready = _condition(
            "Ready",
            False,
            reason,
            "; ".join(not_ready),
            previous=before,
            generation=generation,
            now=now,
        )
    else:
        ready = _condition(
            "Ready",
            True,
            "AllReplicasReady",
            f"serving at {endpoint}",
            previous=before,
            generation=generation,
            now=now,
        )
    return {
        "observedGeneration": generation,
        "model": model,
        "endpoint": endpoint,
        "conditions": [ready, progressing, degraded],
        "pools": pool_status,
    }


def status_differs(current: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether writing ``new`` changes anything (keys the operator does not own are ignored)."""
    current = current or {}
    return any(current.get(key) != value for key, value in new.items())

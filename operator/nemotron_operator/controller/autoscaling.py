"""The controller's side of autoscaling: the Kubernetes-backed implementations of the
Protocols that ``autoscaler.loop.autoscale_once`` depends on (targets from Pods, replicas
through ``/scale``, policy state in an annotation of the pool Deployment), and ``step``,
which the per-CR kopf timer in ``controller.handlers`` calls."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from nemotron_operator.api.models import NemotronDeploymentSpec
from nemotron_operator.autoscaler.loop import (
    STATE_ANNOTATION,
    PoolOutcome,
    autoscale_once,
    pool_deployment_name,
)
from nemotron_operator.autoscaler.metrics_scrape import HttpMetricsFetcher, PoolTargets
from nemotron_operator.autoscaler.settings import builtin_autoscaled_pools
from nemotron_operator.controller.naming import DEPLOYMENT_LABEL, POOL_LABEL
from nemotron_operator.controller.router_objects import ROUTER_PORT
from nemotron_operator.engine.args import ENGINE_PORT
from nemotron_operator.kube.client import KubeClient

__all__ = ["KubeAutoscalingIO", "autoscaled_interval", "status_patch", "step"]

# The parts of a decision that make it new; its time alone does not (one write per change,
# not one per interval).
_DECISION_KEYS = ("desiredReplicas", "currentReplicas", "lastDecision", "error")


def _ready_ip(pod: dict[str, Any]) -> str | None:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    ip = status.get("podIP")
    return str(ip) if ready and ip else None


class KubeAutoscalingIO:
    """TargetSource, ScaleClient and StateStore over one ``KubeClient``."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def __call__(self, *, namespace: str, name: str, pool: str) -> PoolTargets:
        routers = await self._client.list_objects(
            "v1",
            "Pod",
            namespace,
            label_selector=f"{DEPLOYMENT_LABEL}={name},app.kubernetes.io/component=router",
        )
        engines = await self._client.list_objects(
            "v1", "Pod", namespace, label_selector=f"{DEPLOYMENT_LABEL}={name},{POOL_LABEL}={pool}"
        )
        router_ips = [ip for ip in map(_ready_ip, routers) if ip]
        engine_ips = [ip for ip in map(_ready_ip, engines) if ip]
        return PoolTargets(
            router_urls=tuple(f"http://{ip}:{ROUTER_PORT}/metrics" for ip in router_ips),
            engine_urls=tuple(f"http://{ip}:{ENGINE_PORT}/metrics" for ip in engine_ips),
        )

    async def get_replicas(self, *, namespace: str, deployment: str) -> int:
        obj = await self._client.get("apps/v1", "Deployment", namespace, deployment)
        if obj is None:
            raise LookupError(f"Deployment {namespace}/{deployment} not found")
        return int((obj.get("spec") or {}).get("replicas", 0))

    async def set_replicas(self, *, namespace: str, deployment: str, replicas: int) -> None:
        await self._client.patch_merge(
            "apps/v1",
            "Deployment",
            namespace,
            deployment,
            body={"spec": {"replicas": replicas}},
            subresource="scale",
        )

    async def load(self, *, namespace: str, name: str, pool: str) -> Mapping[str, Any] | None:
        obj = await self._client.get(
            "apps/v1", "Deployment", namespace, pool_deployment_name(name, pool)
        )
        raw = ((obj or {}).get("metadata") or {}).get("annotations", {}).get(STATE_ANNOTATION)
        if not raw:
            return None
        try:
            loaded: Mapping[str, Any] = json.loads(raw)
        except ValueError:
            return None
        return loaded

    async def save(self, *, namespace: str, name: str, pool: str, state: Mapping[str, Any]) -> None:
        text = json.dumps(dict(state), sort_keys=True)
        await self._client.patch_merge(
            "apps/v1",
            "Deployment",
            namespace,
            pool_deployment_name(name, pool),
            body={"metadata": {"annotations": {STATE_ANNOTATION: text}}},
        )


def autoscaled_interval(spec: NemotronDeploymentSpec) -> float | None:
    """The timer period for a CR: the shortest interval of its builtin-autoscaled pools."""
    pools = builtin_autoscaled_pools(spec)
    if not pools:
        return None
    return min(settings.interval_s for settings in pools.values())


async def step(
    client: KubeClient,
    http: httpx.AsyncClient,
    *,
    namespace: str,
    name: str,
    spec: NemotronDeploymentSpec,
) -> list[PoolOutcome]:
    """One autoscaling step for one CR."""
    pools = builtin_autoscaled_pools(spec)
    if not pools:
        return []
    io = KubeAutoscalingIO(client)
    return await autoscale_once(
        namespace=namespace,
        name=name,
        pools=pools,
        targets=io,
        fetch=HttpMetricsFetcher(http),
        scaler=io,
        store=io,
        now=time.time(),
    )


def status_patch(status: Mapping[str, Any] | None, outcomes: list[PoolOutcome]) -> dict[str, Any]:
    """The merge patch of the CR's status for ``outcomes`` -- ``{"pools": {<pool>:
    {"autoscaling": ...}}}`` for each pool whose decision changed -- or ``{}``."""
    pools = (status or {}).get("pools") or {}
    changed: dict[str, Any] = {}
    for outcome in outcomes:
        new = outcome.to_status()
        old = ((pools.get(outcome.pool) or {}).get("autoscaling")) or {}
        if all(old.get(key) == new.get(key) for key in _DECISION_KEYS):
            continue
        # null removes an error a merge patch would otherwise keep.
        changed[outcome.pool] = {"autoscaling": {"error": None, **new}}
    return {"pools": changed} if changed else {}

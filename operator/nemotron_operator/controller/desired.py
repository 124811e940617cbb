"""The desired state of one NemotronDeployment: every child object, computed by pure
functions from the CR body, the operator settings and the engine files. The handlers
(``controller.handlers``) apply the result in order; nothing here does I/O.

Builders: ``engine_pool`` (engine ConfigMap, pool Deployments, Services, PDBs),
``router_objects`` (router config, Deployment, Service, RBAC); the model-cache PVC is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemotron_operator.api.models import NemotronDeploymentSpec
from nemotron_operator.api.routerconfig import RouterConfig
from nemotron_operator.controller.context import CrContext
from nemotron_operator.controller.engine_pool import (
    engine_configmap,
    pool_deployment,
    pool_pdb,
    pool_service,
)
from nemotron_operator.controller.naming import (
    Mode,
    labels,
    model_cache_claim_name,
    pool_object_name,
)
from nemotron_operator.controller.router_objects import (
    render_router_config,
    router_configmap,
    router_deployment,
    router_rbac,
    router_service,
)
from nemotron_operator.controller.settings import OperatorSettings

__all__ = [
    "MODES",
    "DesiredState",
    "ObjectKey",
    "context_from_body",
    "desired_state",
    "object_key",
]

MODES: tuple[Mode, Mode] = ("on", "off")

ObjectKey = tuple[str, str, str]  # (apiVersion, kind, name)


def object_key(obj: dict[str, Any]) -> ObjectKey:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


@dataclass(frozen=True)
class DesiredState:
    """Objects to apply, in order (config before the pods that mount it), and the keys of
    objects that must not exist (a disabled pool's, a PVC no longer asked for)."""

    objects: tuple[dict[str, Any], ...]
    absent: tuple[ObjectKey, ...]
    router_config: RouterConfig
    # pool -> the Deployment name, for enabled pools only.
    pool_deployments: dict[Mode, str]


def context_from_body(body: dict[str, Any], settings: OperatorSettings) -> CrContext:
    """Validate a CR body (raises pydantic.ValidationError) into a ``CrContext``."""
    meta = body.get("metadata") or {}
    return CrContext(
        name=str(meta["name"]),
        namespace=str(meta.get("namespace") or "default"),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        spec=NemotronDeploymentSpec.model_validate(body.get("spec") or {}),
        settings=settings,
    )


def _model_cache_claim(ctx: CrContext) -> dict[str, Any] | None:
    cache = ctx.spec.model_cache
    if cache is None or cache.existing_claim is not None:
        return None
    spec: dict[str, Any] = {
        "accessModes": [cache.access_mode],
        "resources": {"requests": {"storage": cache.size}},
    }
    if cache.storage_class_name is not None:
        spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": ctx.metadata(model_cache_claim_name(ctx.name), labels(ctx.name, "engine")),
        "spec": spec,
    }


def desired_state(ctx: CrContext, engine_files: dict[str, str]) -> DesiredState:
    """Everything the CR asks for."""
    objects: list[dict[str, Any]] = [engine_configmap(ctx, engine_files)]
    absent: list[ObjectKey] = []
    claim = _model_cache_claim(ctx)
    # A claim made earlier and no longer asked for is left in place on purpose: it holds
    # downloaded weights, and deleting the CR garbage-collects it anyway.
    if claim is not None:
        objects.append(claim)
    pools: dict[Mode, str] = {}
    for mode in MODES:
        name = pool_object_name(ctx.name, mode)
        if ctx.spec.pool(mode).enabled:
            objects += [
                pool_service(ctx, mode),
                pool_pdb(ctx, mode),
                pool_deployment(ctx, mode, engine_files),
            ]
            pools[mode] = name
        else:
            absent += [
                ("apps/v1", "Deployment", name),
                ("v1", "Service", name),
                ("policy/v1", "PodDisruptionBudget", name),
            ]
    objects += [
        router_configmap(ctx),
        *router_rbac(ctx),
        router_service(ctx),
        router_deployment(ctx),
    ]
    return DesiredState(
        objects=tuple(objects),
        absent=tuple(absent),
        router_config=render_router_config(ctx),
        pool_deployments=pools,
    )

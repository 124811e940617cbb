"""Names and labels of the objects made per NemotronDeployment (docs/contracts.md), and their
owner reference. Pure; used by every builder (``engine_pool``, ``router_objects``,
``desired``) and by the handlers to find the children of a CR."""

from __future__ import annotations

from typing import Literal

from nemotron_operator.api.models import API_VERSION, KIND

__all__ = [
    "DEPLOYMENT_LABEL",
    "FIELD_MANAGER",
    "MANAGED_BY",
    "POOL_LABEL",
    "Component",
    "Mode",
    "engine_configmap_name",
    "labels",
    "model_cache_claim_name",
    "owner_reference",
    "pool_object_name",
    "pool_selector",
    "router_configmap_name",
    "router_selector",
]

Mode = Literal["on", "off"]
Component = Literal["engine", "router", "config"]

FIELD_MANAGER = "nemotron-operator"
MANAGED_BY = "nemotron-operator"
DEPLOYMENT_LABEL = "serving.nemotron.dev/deployment"
POOL_LABEL = "serving.nemotron.dev/pool"


def engine_configmap_name(name: str) -> str:
    return f"{name}-engine"


def router_configmap_name(name: str) -> str:
    return f"{name}-router"


def pool_object_name(name: str, mode: Mode) -> str:
    """Deployment, Service and PDB of one pool."""
    return f"{name}-{mode}"


def model_cache_claim_name(name: str) -> str:
    return f"{name}-model-cache"


def pool_selector(name: str, mode: Mode) -> dict[str, str]:
    """Selector labels of one pool's pods (immutable in the Deployment)."""
    return {DEPLOYMENT_LABEL: name, POOL_LABEL: mode}


def router_selector(name: str) -> dict[str, str]:
    return {DEPLOYMENT_LABEL: name, "app.kubernetes.io/component": "router"}


def labels(name: str, component: Component, mode: Mode | None = None) -> dict[str, str]:
    """The contract labels of an object (and pod template) of CR ``name``."""
    app = "nemotron-router" if component == "router" else "nemotron-engine"
    result = {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "nemotron",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        DEPLOYMENT_LABEL: name,
    }
    if mode is not None:
        result[POOL_LABEL] = mode
    return result


def owner_reference(name: str, uid: str) -> dict[str, object]:
    """Makes the CR the controller owner, so deleting it garbage-collects the object."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }

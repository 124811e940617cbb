"""Desired objects of the router side: the router config (``api.routerconfig.RouterConfig``
rendered from the CR) in the ``<name>-router`` ConfigMap, the router Deployment and Service
named after the CR (the cluster-internal endpoint), and the ServiceAccount, Role and
RoleBinding that let router pods watch their engine pods. Pure functions of a ``CrContext``.

The router re-reads its config file when the ConfigMap changes, so a change of sampling or
max_tokens updates the ConfigMap only: neither router nor engine pods roll.
"""

from __future__ import annotations

from typing import Any

import yaml

from nemotron_operator.api.routerconfig import PoolRoute, RouterConfig
from nemotron_operator.controller.context import CrContext
from nemotron_operator.controller.engine_pool import resolved_max_model_len
from nemotron_operator.controller.naming import (
    Mode,
    labels,
    pool_selector,
    router_configmap_name,
    router_selector,
)
from nemotron_operator.engine.args import ENGINE_PORT

__all__ = [
    "API_KEYS_DIR",
    "ROUTER_CONFIG_DIR",
    "ROUTER_CONFIG_KEY",
    "ROUTER_PORT",
    "endpoint_url",
    "render_router_config",
    "router_configmap",
    "router_deployment",
    "router_rbac",
    "router_service",
]

ROUTER_PORT = 8080
ROUTER_CONFIG_DIR = "/etc/nemotron/router"
ROUTER_CONFIG_KEY = "config.yaml"
API_KEYS_DIR = "/etc/nemotron/api-keys"
_MODES: tuple[Mode, Mode] = ("on", "off")


def _label_selector(selector: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in selector.items())


def render_router_config(ctx: CrContext) -> RouterConfig:
    """The router's config for this CR: both pools (a disabled one is listed as disabled)."""
    spec = ctx.spec
    pools = []
    for mode in _MODES:
        pool = spec.pool(mode)
        pools.append(
            PoolRoute(
                name=mode,
                enabled=pool.enabled,
                namespace=ctx.namespace,
                label_selector=_label_selector(pool_selector(ctx.name, mode)),
                port=ENGINE_PORT,
                temperature=pool.sampling.temperature,
                top_p=pool.sampling.top_p,
                max_tokens=pool.max_tokens,
                max_model_len=resolved_max_model_len(ctx, mode),
                # The card: greedy decoding is right with reasoning off, never with it on.
                allow_zero_temperature=mode == "off",
                max_queue=spec.router.max_queue_per_pool,
            )
        )
    return RouterConfig(
        generation=max(ctx.generation, 0),
        served_model_name=spec.resolved_served_model_name,
        default_mode=spec.router.default_mode,
        pools=tuple(pools),
        request_timeout_seconds=float(spec.router.request_timeout_seconds),
        api_keys_dir=API_KEYS_DIR if spec.router.api_key_secret_ref is not None else None,
        lend_idle_capacity=spec.router.lend_idle_capacity,
    )


def router_configmap(ctx: CrContext) -> dict[str, Any]:
    config = render_router_config(ctx).model_dump(mode="json")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(router_configmap_name(ctx.name), labels(ctx.name, "config")),
        "data": {ROUTER_CONFIG_KEY: yaml.safe_dump(config, sort_keys=True)},
    }


def _service_account_name(ctx: CrContext) -> str:
    return f"{ctx.name}-router"


def router_rbac(ctx: CrContext) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding: the router lists and watches Pods of its pools."""
    name = _service_account_name(ctx)
    meta = labels(ctx.name, "router")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": ctx.metadata(name, meta)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": ctx.metadata(name, meta),
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": ctx.metadata(name, meta),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace}],
        },
    ]


def router_deployment(ctx: CrContext) -> dict[str, Any]:
    spec = ctx.spec
    settings = ctx.settings
    pod_labels = labels(ctx.name, "router")
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": router_configmap_name(ctx.name)}}
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": ROUTER_CONFIG_DIR, "readOnly": True}
    ]
    if spec.router.api_key_secret_ref is not None:
        volumes.append(
            {"name": "api-keys", "secret": {"secretName": spec.router.api_key_secret_ref.name}}
        )
        mounts.append({"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": "router",
        "image": settings.router_image,
        "imagePullPolicy": settings.router_image_pull_policy,
        "command": [
            "nemotron-operator",
            "router",
            "--config",
            f"{ROUTER_CONFIG_DIR}/{ROUTER_CONFIG_KEY}",
        ],
        "ports": [{"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
        "volumeMounts": mounts,
        # /ready: config loaded and not draining; /health: the process is alive.
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
    }
    if spec.router.resources:
        container["resources"] = dict(spec.router.resources)
    pod: dict[str, Any] = {
        "serviceAccountName": _service_account_name(ctx),
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": 30,
    }
    if spec.router.node_selector:
        pod["nodeSelector"] = dict(spec.router.node_selector)
    if spec.router.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.router.tolerations]
    if spec.router.priority_class_name:
        pod["priorityClassName"] = spec.router.priority_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(ctx.name, pod_labels),
        "spec": {
            # The router is stateless and the CR owns its replica count.
            "replicas": spec.router.replicas,
            "selector": {"matchLabels": router_selector(ctx.name)},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": pod,
            },
        },
    }


def router_service(ctx: CrContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(ctx.name, labels(ctx.name, "router")),
        "spec": {
            "type": "ClusterIP",
            "selector": router_selector(ctx.name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def endpoint_url(ctx: CrContext) -> str:
    """The OpenAI base URL clients in the cluster use."""
    return f"http://{ctx.name}.{ctx.namespace}.svc.{ctx.settings.cluster_domain}/v1"

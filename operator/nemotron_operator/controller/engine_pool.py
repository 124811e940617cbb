"""Desired objects of the engine side: the ``<name>-engine`` ConfigMap and, per enabled pool,
the vLLM Deployment, its Service and its PodDisruptionBudget. Pure functions of a
``CrContext`` (``controller.context``); ``controller.desired`` assembles them.

The Deployment carries no ``spec.replicas``: the replica count belongs to the autoscaler or
``kubectl scale`` (``controller.replicas`` decides when the operator sets it). Its pod template
carries the hash of the ConfigMap's content, so new engine files roll the pods and nothing
else does.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from nemotron_operator.api.presets import PRESETS
from nemotron_operator.controller.context import CrContext
from nemotron_operator.controller.naming import (
    Mode,
    engine_configmap_name,
    labels,
    model_cache_claim_name,
    pool_object_name,
    pool_selector,
)
from nemotron_operator.engine.args import ENGINE_PORT, render_vllm_args
from nemotron_operator.engine.assets import (
    CHAT_TEMPLATE_FILE,
    ENGINE_MOUNT_DIR,
    REASONING_PARSER_FILE,
    TOOL_PARSER_FILE,
)

__all__ = [
    "CONFIG_HASH_ANNOTATION",
    "GPU_RESOURCE",
    "HF_HOME",
    "PRESTOP_SECONDS",
    "config_hash",
    "engine_configmap",
    "pool_deployment",
    "pool_pdb",
    "pool_service",
    "termination_grace_seconds",
]

GPU_RESOURCE = "nvidia.com/gpu"
CONFIG_HASH_ANNOTATION = "serving.nemotron.dev/engine-config-hash"
# Where engines keep the Hugging Face cache (on the model-cache PVC when there is one).
HF_HOME = "/var/cache/huggingface"
# Time for the router to stop picking a terminating pod before vLLM starts draining.
PRESTOP_SECONDS = 5
_GRACE_MARGIN_SECONDS = 10
_STARTUP_PERIOD_SECONDS = 10


def config_hash(files: dict[str, str]) -> str:
    """A short, stable digest of the engine files (order-independent)."""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()
    return digest[:16]


def engine_configmap(ctx: CrContext, files: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(engine_configmap_name(ctx.name), labels(ctx.name, "config")),
        "data": dict(sorted(files.items())),
    }


def termination_grace_seconds(shutdown_timeout: int) -> int:
    """Covers the preStop pause, vLLM's drain and a margin to exit."""
    return PRESTOP_SECONDS + shutdown_timeout + _GRACE_MARGIN_SECONDS


def resolved_max_model_len(ctx: CrContext, mode: Mode) -> int | None:
    """The pool's --max-model-len: its own, else the preset's, else None (the model's)."""
    pool = ctx.spec.pool(mode)
    if pool.max_model_len is not None:
        return pool.max_model_len
    preset = PRESETS.get(ctx.spec.model.preset or "")
    return preset.max_model_len if preset is not None else None


def _vllm_args(ctx: CrContext, mode: Mode, files: dict[str, str]) -> list[str]:
    spec = ctx.spec
    pool = spec.pool(mode)
    preset = PRESETS.get(spec.model.preset or "")
    max_model_len = resolved_max_model_len(ctx, mode)
    gpus = pool.gpus_per_replica or (preset.default_gpus if preset else 1)
    tool_calling = spec.tool_calling.enabled and TOOL_PARSER_FILE in files
    return render_vllm_args(
        model=spec.model.hf_id,
        served_model_name=spec.resolved_served_model_name,
        max_model_len=max_model_len,
        tensor_parallel_size=gpus,
        gpu_memory_utilization=pool.gpu_memory_utilization,
        tool_calling=tool_calling,
        shutdown_timeout=pool.shutdown_timeout_seconds,
        extra_args=pool.engine_args,
        revision=spec.model.revision,
        reasoning_parser=REASONING_PARSER_FILE in files,
        chat_template=CHAT_TEMPLATE_FILE in files,
    )


def _gpus(ctx: CrContext, mode: Mode) -> int:
    pool = ctx.spec.pool(mode)
    preset = PRESETS.get(ctx.spec.model.preset or "")
    return pool.gpus_per_replica or (preset.default_gpus if preset else 1)


def _resources(ctx: CrContext, mode: Mode) -> dict[str, Any]:
    user = ctx.spec.pool(mode).resources
    gpus = str(_gpus(ctx, mode))
    requests = {**dict(user.get("requests") or {}), GPU_RESOURCE: gpus}
    limits = {**dict(user.get("limits") or {}), GPU_RESOURCE: gpus}
    rest = {k: v for k, v in user.items() if k not in ("requests", "limits")}
    return {**rest, "requests": requests, "limits": limits}


def _env(ctx: CrContext, mode: Mode) -> list[dict[str, Any]]:
    spec = ctx.spec
    env: list[dict[str, Any]] = [{"name": "HF_HOME", "value": HF_HOME}]
    if spec.hf_token_secret_ref is not None:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": spec.hf_token_secret_ref.name,
                        "key": spec.hf_token_secret_ref.key,
                    }
                },
            }
        )
    names = {item["name"] for item in env}
    env += [dict(item) for item in spec.pool(mode).env if item.get("name") not in names]
    return env


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _volumes(ctx: CrContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "engine", "configMap": {"name": engine_configmap_name(ctx.name)}},
        # vLLM's workers share tensors through /dev/shm; the card runs with --shm-size=16GB.
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "engine", "mountPath": ENGINE_MOUNT_DIR, "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    cache = ctx.spec.model_cache
    if cache is not None:
        claim = cache.existing_claim or model_cache_claim_name(ctx.name)
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "model-cache", "mountPath": HF_HOME})
    return volumes, mounts


def _pod_spec(ctx: CrContext, mode: Mode, files: dict[str, str]) -> dict[str, Any]:
    spec = ctx.spec
    pool = spec.pool(mode)
    volumes, mounts = _volumes(ctx)
    container: dict[str, Any] = {
        "name": "vllm",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["vllm", "serve"],
        "args": _vllm_args(ctx, mode, files),
        "ports": [{"name": "http", "containerPort": ENGINE_PORT, "protocol": "TCP"}],
        "env": _env(ctx, mode),
        "resources": _resources(ctx, mode),
        "volumeMounts": mounts,
        # Model download and load can take many minutes; liveness only starts after this.
        "startupProbe": _probe(
            "/health",
            period=_STARTUP_PERIOD_SECONDS,
            failures=math.ceil(pool.startup_timeout_seconds / _STARTUP_PERIOD_SECONDS),
        ),
        "readinessProbe": _probe("/health", period=5, failures=3),
        "livenessProbe": _probe("/health", period=10, failures=6),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
    }
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": termination_grace_seconds(pool.shutdown_timeout_seconds),
        # GPU nodes are commonly tainted nvidia.com/gpu:NoSchedule.
        "tolerations": [
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
            *[dict(t) for t in pool.tolerations],
        ],
    }
    if pool.node_selector:
        pod["nodeSelector"] = dict(pool.node_selector)
    if pool.affinity:
        pod["affinity"] = dict(pool.affinity)
    if pool.priority_class_name:
        pod["priorityClassName"] = pool.priority_class_name
    return pod


def pool_deployment(ctx: CrContext, mode: Mode, files: dict[str, str]) -> dict[str, Any]:
    """The pool's Deployment, without ``spec.replicas`` (see the module docstring)."""
    pod_labels = labels(ctx.name, "engine", mode)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(pool_object_name(ctx.name, mode), pod_labels),
        "spec": {
            "selector": {"matchLabels": pool_selector(ctx.name, mode)},
            "revisionHistoryLimit": 3,
            # A new pod must be Ready before an old one goes: no capacity dip on a rollout.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash(files)},
                },
                "spec": _pod_spec(ctx, mode, files),
            },
        },
    }


def pool_service(ctx: CrContext, mode: Mode) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(
            pool_object_name(ctx.name, mode), labels(ctx.name, "engine", mode)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": pool_selector(ctx.name, mode),
            "ports": [{"name": "http", "port": ENGINE_PORT, "targetPort": "http"}],
        },
    }


def pool_pdb(ctx: CrContext, mode: Mode) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(
            pool_object_name(ctx.name, mode), labels(ctx.name, "engine", mode)
        ),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": pool_selector(ctx.name, mode)},
        },
    }

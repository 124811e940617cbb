"""How the pod runner turns a container into a process: mappers, env, mounts, probes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from nemotron_operator.devcluster.podspec import plan_container

VENV_BIN = str(Path(sys.executable).parent)


def _pod(container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
        "spec": {"containers": [container], "nodeName": "gpu-node-0", **spec},
        "status": {"podIP": "127.20.0.7"},
    }


def _lookup(kind: str, name: str, key: str) -> str | None:
    values = {("secretKeyRef", "hf", "token"): "hf_123", ("configMapRef", "cm", "*"): "A=1\nB=2"}
    return values.get((kind, name, key))


def _plan(container: dict[str, Any], volume_dirs: dict[str, str] | None = None) -> Any:
    return plan_container(
        _pod(container),
        container,
        volume_dirs=volume_dirs or {},
        lookup=_lookup,
        base_env={"PATH": "/bin"},
    )


def test_vllm_image_runs_the_emulator_with_the_same_args_on_the_pod_ip() -> None:
    plan = _plan(
        {
            "name": "vllm",
            "image": "vllm/vllm-openai:v0.33.0",
            "command": ["vllm", "serve"],
            "args": ["nvidia/x", "--max-model-len", "131072"],
        }
    )
    assert plan.argv == [
        f"{VENV_BIN}/nemotron-operator",
        "emulate-engine",
        "nvidia/x",
        "--max-model-len",
        "131072",
        "--host",
        "127.20.0.7",
    ]


def test_own_image_runs_its_entrypoint_from_the_venv_and_binds_the_router() -> None:
    plan = _plan(
        {
            "name": "router",
            "image": "ghcr.io/nemotron-operator/nemotron-operator:0.1.0",
            "args": ["router", "--config", "/etc/nemotron/router/config.yaml"],
        }
    )
    assert plan.argv[0] == f"{VENV_BIN}/nemotron-operator"
    assert plan.argv[1:] == [
        "router",
        "--config",
        "/etc/nemotron/router/config.yaml",
        "--host",
        "127.20.0.7",
    ]


def test_env_resolves_field_refs_secrets_env_from_and_expansion() -> None:
    plan = _plan(
        {
            "name": "c",
            "image": "busybox",
            "command": ["sh", "-c", "echo $(GREETING)"],
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "env": [
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                {"name": "GREETING", "value": "hi-$(NS)"},
            ],
        }
    )
    assert plan.env["NS"] == "ns"
    assert plan.env["IP"] == "127.20.0.7"
    assert plan.env["POD_IP"] == "127.20.0.7"
    assert plan.env["HF_TOKEN"] == "hf_123"
    assert (plan.env["CM_A"], plan.env["CM_B"]) == ("1", "2")
    assert plan.argv[-1] == "echo hi-ns"


def test_a_missing_secret_fails_unless_optional() -> None:
    ref = {"secretKeyRef": {"name": "absent", "key": "k"}}
    with pytest.raises(LookupError, match="HF"):
        _plan(
            {
                "name": "c",
                "image": "busybox",
                "command": ["true"],
                "env": [{"name": "HF", "valueFrom": ref}],
            }
        )
    optional = {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}
    plan = _plan(
        {
            "name": "c",
            "image": "busybox",
            "command": ["true"],
            "env": [{"name": "HF", "valueFrom": optional}],
        }
    )
    assert "HF" not in plan.env


def test_mounts_map_volumes_with_sub_paths_and_modes() -> None:
    plan = _plan(
        {
            "name": "c",
            "image": "busybox",
            "command": ["true"],
            "volumeMounts": [
                {"name": "engine", "mountPath": "/etc/nemotron/engine", "readOnly": True},
                {"name": "cfg", "mountPath": "/etc/app/one.yaml", "subPath": "one.yaml"},
            ],
        },
        volume_dirs={"engine": "/state/v/engine", "cfg": "/state/v/cfg"},
    )
    assert [(m.source, m.target, m.read_only) for m in plan.mounts] == [
        ("/state/v/engine", "/etc/nemotron/engine", True),
        ("/state/v/cfg/one.yaml", "/etc/app/one.yaml", False),
    ]
    with pytest.raises(LookupError, match="not defined"):
        _plan(
            {
                "name": "c",
                "image": "b",
                "command": ["true"],
                "volumeMounts": [{"name": "x", "mountPath": "/x"}],
            }
        )


def test_readiness_probe_by_port_name_and_prestop() -> None:
    plan = _plan(
        {
            "name": "c",
            "image": "busybox",
            "command": ["true"],
            "ports": [{"name": "http", "containerPort": 8000}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        }
    )
    assert plan.readiness is not None
    assert (plan.readiness.port, plan.readiness.path) == (8000, "/health")
    assert plan.readiness.period_seconds <= 1.0  # probed faster here than in production
    assert plan.pre_stop == ["sleep", "5"]

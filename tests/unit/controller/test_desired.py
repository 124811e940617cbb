"""The desired-state builders: every object of docs/contracts.md with the right spec, and the
properties the issue asks for (which changes roll engine pods and which do not)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nemotron_operator.api.routerconfig import RouterConfig
from nemotron_operator.controller.desired import context_from_body, desired_state
from nemotron_operator.controller.engine_pool import (
    CONFIG_HASH_ANNOTATION,
    GPU_RESOURCE,
    termination_grace_seconds,
)
from nemotron_operator.controller.settings import OperatorSettings
from nemotron_operator.engine.assets import ENGINE_MOUNT_DIR

FILES = {
    "llama_nemotron_nano_tools.jinja": "{{ messages }}",
    "nemotron_tool_parser.py": "# tool parser",
    "nemotron_reasoning_parser.py": "# reasoning parser",
}
SETTINGS = OperatorSettings(router_image="example.com/nemotron-operator:test")


def _body(
    spec: dict[str, Any] | None = None, *, name: str = "nano", generation: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "serving.nemotron.dev/v1alpha1",
        "kind": "NemotronDeployment",
        "metadata": {"name": name, "namespace": "ai", "uid": "uid-1", "generation": generation},
        "spec": spec if spec is not None else {"model": {"preset": "nano-4b-v1.1"}},
    }


def _objects(
    body: dict[str, Any], files: dict[str, str] = FILES
) -> dict[tuple[str, str], dict[str, Any]]:
    state = desired_state(context_from_body(body, SETTINGS), files)
    return {(o["kind"], o["metadata"]["name"]): o for o in state.objects}


def _engine_container(objs: dict[tuple[str, str], dict[str, Any]], mode: str) -> dict[str, Any]:
    container: dict[str, Any] = objs[("Deployment", f"nano-{mode}")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_every_contract_object_is_made_with_labels_and_owner() -> None:
    objs = _objects(_body())
    for key in [
        ("ConfigMap", "nano-engine"),
        ("ConfigMap", "nano-router"),
        ("Deployment", "nano-on"),
        ("Deployment", "nano-off"),
        ("Service", "nano-on"),
        ("Service", "nano-off"),
        ("PodDisruptionBudget", "nano-on"),
        ("PodDisruptionBudget", "nano-off"),
        ("Deployment", "nano"),
        ("Service", "nano"),
    ]:
        assert key in objs, key
    for obj in objs.values():
        meta = obj["metadata"]
        assert meta["namespace"] == "ai"
        assert meta["ownerReferences"][0]["uid"] == "uid-1"
        assert meta["ownerReferences"][0]["controller"] is True
        assert meta["labels"]["app.kubernetes.io/instance"] == "nano"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "nemotron-operator"
        assert meta["labels"]["serving.nemotron.dev/deployment"] == "nano"
    assert ("PersistentVolumeClaim", "nano-model-cache") not in objs


def test_engine_pod_spec() -> None:
    objs = _objects(_body())
    deployment = objs[("Deployment", "nano-on")]
    assert "replicas" not in deployment["spec"], "replicas belong to the scaler"
    pod = deployment["spec"]["template"]["spec"]
    container = _engine_container(objs, "on")
    assert container["command"] == ["vllm", "serve"]
    args = container["args"]
    assert args[0] == "nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1"
    joined = " ".join(args)
    for expected in [
        "--served-model-name Llama-Nemotron-Nano-4B-v1.1",
        "--max-model-len 131072",
        "--gpu-memory-utilization 0.95",
        "--tensor-parallel-size 1",
        "--enable-auto-tool-choice",
        f"--tool-parser-plugin {ENGINE_MOUNT_DIR}/nemotron_tool_parser.py",
        "--tool-call-parser llama_nemotron_json",
        f"--chat-template {ENGINE_MOUNT_DIR}/llama_nemotron_nano_tools.jinja",
        f"--reasoning-parser-plugin {ENGINE_MOUNT_DIR}/nemotron_reasoning_parser.py",
        "--reasoning-parser nemotron_think",
        "--shutdown-timeout 60",
    ]:
        assert expected in joined
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["resources"]["limits"][GPU_RESOURCE] == "1"
    assert container["resources"]["requests"][GPU_RESOURCE] == "1"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[ENGINE_MOUNT_DIR]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["engine"]["configMap"]["name"] == "nano-engine"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    prestop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= prestop + 60
    assert CONFIG_HASH_ANNOTATION in deployment["spec"]["template"]["metadata"]["annotations"]


def test_hf_token_cache_and_scheduling() -> None:
    spec = {
        "model": {"huggingFaceId": "acme/ft", "revision": "v2"},
        "hfTokenSecretRef": {"name": "hf"},
        "modelCache": {"size": "80Gi", "storageClassName": "fast"},
        "pools": {
            "reasoningOn": {
                "gpusPerReplica": 2,
                "nodeSelector": {"gpu": "h100"},
                "priorityClassName": "high",
                "engineArgs": ["--enforce-eager"],
                "env": [{"name": "A", "value": "b"}],
            }
        },
    }
    objs = _objects(_body(spec))
    container = _engine_container(objs, "on")
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}
    assert env["A"]["value"] == "b"
    assert container["args"][-1] == "--enforce-eager"
    assert "--revision" in container["args"]
    assert "--max-model-len" not in container["args"]  # unknown model: vLLM reads its config
    assert container["resources"]["limits"][GPU_RESOURCE] == "2"
    pod = objs[("Deployment", "nano-on")]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["priorityClassName"] == "high"
    claim = objs[("PersistentVolumeClaim", "nano-model-cache")]
    assert claim["spec"]["resources"]["requests"]["storage"] == "80Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "nano-model-cache"


def test_router_config_and_deployment() -> None:
    spec = {
        "model": {"preset": "nano-8b-v1"},
        "router": {"apiKeySecretRef": {"name": "keys"}, "defaultMode": "on", "maxQueuePerPool": 9},
        "pools": {"reasoningOff": {"maxTokens": 1000}},
    }
    objs = _objects(_body(spec, generation=7))
    config = RouterConfig.model_validate(
        yaml.safe_load(objs[("ConfigMap", "nano-router")]["data"]["config.yaml"])
    )
    assert config.generation == 7
    assert config.served_model_name == "Llama-Nemotron-Nano-8B-v1"
    assert config.default_mode == "on"
    assert config.api_keys_dir == "/etc/nemotron/api-keys"
    pools = {p.name: p for p in config.pools}
    assert (pools["on"].temperature, pools["on"].top_p, pools["on"].max_tokens) == (
        0.6,
        0.95,
        32768,
    )
    assert (pools["off"].temperature, pools["off"].max_tokens) == (0.0, 1000)
    assert pools["off"].allow_zero_temperature
    assert not pools["on"].allow_zero_temperature
    assert (
        pools["on"].label_selector
        == "serving.nemotron.dev/deployment=nano,serving.nemotron.dev/pool=on"
    )
    assert pools["on"].namespace == "ai"
    assert pools["on"].max_queue == 9
    router = objs[("Deployment", "nano")]["spec"]["template"]["spec"]
    container = router["containers"][0]
    assert container["command"] == [
        "nemotron-operator",
        "router",
        "--config",
        "/etc/nemotron/router/config.yaml",
    ]
    assert container["image"] == "example.com/nemotron-operator:test"
    assert container["ports"][0]["containerPort"] == 8080
    volumes = {v["name"]: v for v in router["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "keys"
    assert "nodeSelector" not in router
    placed = _objects(
        _body(
            {
                **spec,
                "router": {
                    **spec["router"],
                    "nodeSelector": {"pool": "cpu"},
                    "priorityClassName": "p",
                },
            }
        )
    )[("Deployment", "nano")]["spec"]["template"]["spec"]
    assert placed["nodeSelector"] == {"pool": "cpu"}
    assert placed["priorityClassName"] == "p"
    service = objs[("Service", "nano")]["spec"]
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_disabled_pool_is_absent() -> None:
    body = _body(
        {"model": {"preset": "nano-4b-v1.1"}, "pools": {"reasoningOn": {"enabled": False}}}
    )
    state = desired_state(context_from_body(body, SETTINGS), FILES)
    names = {(o["kind"], o["metadata"]["name"]) for o in state.objects}
    assert ("Deployment", "nano-on") not in names
    assert ("apps/v1", "Deployment", "nano-on") in state.absent
    assert set(state.pool_deployments) == {"off"}


def test_missing_engine_files_drop_their_flags() -> None:
    objs = _objects(_body(), files={"llama_nemotron_nano_tools.jinja": "x"})
    args = _engine_container(objs, "on")["args"]
    assert "--chat-template" in args
    assert "--tool-parser-plugin" not in args
    assert "--reasoning-parser-plugin" not in args


def _pod_templates(body: dict[str, Any], files: dict[str, str] = FILES) -> dict[str, Any]:
    objs = _objects(body, files)
    return {name: o["spec"]["template"] for (kind, name), o in objs.items() if kind == "Deployment"}


sampling_changes = st.fixed_dictionaries(
    {
        "temperature": st.floats(0.05, 1.5, allow_nan=False),
        "topP": st.floats(0.05, 1.0, allow_nan=False),
    }
)


@settings(max_examples=40, deadline=None)
@given(
    sampling=sampling_changes, max_tokens=st.integers(1, 131072), generation=st.integers(1, 10**6)
)
def test_policy_changes_never_roll_pods(
    sampling: dict[str, float], max_tokens: int, generation: int
) -> None:
    """Sampling and maxTokens live in the router config: no pod template changes."""
    before = _pod_templates(_body())
    spec = {
        "model": {"preset": "nano-4b-v1.1"},
        "pools": {"reasoningOn": {"sampling": sampling, "maxTokens": max_tokens}},
    }
    after_body = _body(spec, generation=generation)
    assert _pod_templates(after_body) == before
    cm_before = _objects(_body())[("ConfigMap", "nano-router")]["data"]
    cm_after = _objects(after_body)[("ConfigMap", "nano-router")]["data"]
    assert cm_before != cm_after


@pytest.mark.parametrize(
    "change",
    [
        {"model": {"preset": "nano-8b-v1"}},
        {"model": {"preset": "nano-4b-v1.1"}, "image": "vllm/vllm-openai:v0.34.0"},
        {"model": {"preset": "nano-4b-v1.1"}, "pools": {"reasoningOn": {"maxModelLen": 32768}}},
    ],
)
def test_engine_changes_roll_engine_pods(change: dict[str, Any]) -> None:
    before = _pod_templates(_body())
    after = _pod_templates(_body(change))
    assert after["nano-on"] != before["nano-on"]
    assert after["nano"] == before["nano"], "the router does not roll for engine changes"


def test_engine_file_change_rolls_engines_through_the_hash() -> None:
    before = _pod_templates(_body())
    files = copy.deepcopy(FILES)
    files["llama_nemotron_nano_tools.jinja"] += "\n"
    after = _pod_templates(_body(), files)
    key = CONFIG_HASH_ANNOTATION
    assert (
        after["nano-on"]["metadata"]["annotations"][key]
        != before["nano-on"]["metadata"]["annotations"][key]
    )


def test_desired_state_is_deterministic() -> None:
    assert _objects(_body()) == _objects(_body())


@given(shutdown=st.integers(0, 3600))
def test_grace_covers_prestop_and_drain(shutdown: int) -> None:
    assert termination_grace_seconds(shutdown) > shutdown + 5

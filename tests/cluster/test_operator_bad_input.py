"""Bad NemotronDeployments against the real apiserver: each is refused at apply time with a
message that names the field (schema and CEL rules of the generated CRD); what only the
running system can tell (a missing Secret, GPUs no node has) turns into ``Degraded`` with a
clear reason, while the operator keeps running and makes nothing for a refused CR."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.operator_harness import Kubectl, OperatorProcess, nemotron
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

GOOD: dict[str, Any] = {"model": {"preset": "nano-4b-v1.1"}}


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GOOD)
    node = spec
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return spec


BAD: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "wrong-type",
        _with("pools.reasoningOn.replicas.min", "one"),
        ["spec.pools.reasoningOn.replicas.min", "integer"],
    ),
    (
        "min-gt-max",
        _with("pools.reasoningOn.replicas", {"min": 3, "max": 2}),
        ["replicas.min must be <= replicas.max"],
    ),
    (
        "unknown-preset",
        _with("model.preset", "nano-9b"),
        ["spec.model.preset", "Unsupported value"],
    ),
    ("no-model", {"pools": {}}, ["spec.model", "Required"]),
    (
        "two-models",
        _with("model.huggingFaceId", "acme/x"),
        ["exactly one of model.preset or model.huggingFaceId"],
    ),
    (
        "negative-gpus",
        _with("pools.reasoningOff.gpusPerReplica", -1),
        ["spec.pools.reasoningOff.gpusPerReplica"],
    ),
    (
        "max-tokens-gt-len",
        _with("pools.reasoningOff", {"maxTokens": 9000, "maxModelLen": 4096}),
        ["spec.pools.reasoningOff.maxTokens", "maxTokens must be <= maxModelLen"],
    ),
    (
        "managed-flag",
        _with("pools.reasoningOn.engineArgs", ["--enforce-eager", "--max-model-len=4096"]),
        ["spec.pools.reasoningOn.engineArgs", "flags the operator manages"],
    ),
    (
        "zero-temp-on",
        _with("pools.reasoningOn.sampling", {"temperature": 0}),
        ["spec.pools.reasoningOn.sampling.temperature"],
    ),
    (
        "no-pool",
        _with("pools", {"reasoningOn": {"enabled": False}, "reasoningOff": {"enabled": False}}),
        ["at least one pool must be enabled"],
    ),
    (
        "default-mode-off-disabled",
        _with("pools.reasoningOff", {"enabled": False}),
        ["router.defaultMode must name an enabled pool"],
    ),
    ("bad-hf-id", {"model": {"huggingFaceId": "not an id"}}, ["spec.model.huggingFaceId"]),
    (
        "bad-utilization",
        _with("pools.reasoningOn.gpuMemoryUtilization", 1.5),
        ["spec.pools.reasoningOn.gpuMemoryUtilization"],
    ),
]


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    with kubectl.namespaces(1, prefix="op-bad") as names:
        yield names[0]


@pytest.mark.parametrize(("name", "spec", "needles"), BAD, ids=[case[0] for case in BAD])
def test_refused_at_apply_time_naming_the_field(
    kubectl: Kubectl, namespace: str, name: str, spec: dict[str, Any], needles: list[str]
) -> None:
    result = kubectl.apply(nemotron(name, namespace, spec), check=False)
    assert result.returncode != 0, f"accepted: {spec}"
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert kubectl.get("nemotrondeployment", name, namespace) is None


def test_bad_name_refused(kubectl: Kubectl, namespace: str) -> None:
    result = kubectl.apply(nemotron("x" * 60, namespace, GOOD), check=False)
    assert result.returncode != 0
    assert "metadata.name" in result.stderr


def test_defaults_are_filled_by_the_apiserver(kubectl: Kubectl, namespace: str) -> None:
    result = kubectl.run(
        "apply",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        stdin=json.dumps(nemotron("defaults", namespace, GOOD)),
    )
    spec = json.loads(result.stdout)["spec"]
    assert spec["pools"]["reasoningOn"]["sampling"] == {"temperature": 0.6, "topP": 0.95}
    assert spec["pools"]["reasoningOff"]["maxTokens"] == 8192
    assert spec["toolCalling"]["enabled"] is True
    assert spec["image"] == "vllm/vllm-openai:v0.33.0"


def test_runtime_problems_become_degraded(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    operator = OperatorProcess(namespaces=[namespace], log_path=tmp_path / "operator.log").start()
    try:
        operator.wait_until_serving()
        kubectl.apply(
            nemotron("nosecret", namespace, {**GOOD, "hfTokenSecretRef": {"name": "hf-missing"}})
        )
        # GPUs of a kind no node has: the scheduler cannot place the engine pod.
        kubectl.apply(
            nemotron(
                "nogpu",
                namespace,
                {
                    **GOOD,
                    "pools": {
                        "reasoningOn": {"nodeSelector": {"nvidia.com/gpu.product": "NO-SUCH-GPU"}},
                        "reasoningOff": {"enabled": False},
                    },
                    "router": {"defaultMode": "on"},
                },
            )
        )

        def degraded(name: str, reason: str) -> dict[str, Any] | None:
            body = kubectl.get("nemotrondeployment", name, namespace) or {}
            for condition in (body.get("status") or {}).get("conditions") or []:
                if (
                    condition["type"] == "Degraded"
                    and condition["status"] == "True"
                    and condition["reason"] == reason
                ):
                    return dict(condition)
            return None

        missing = wait_for(
            lambda: degraded("nosecret", "SecretNotFound"), 90, interval=1, what="SecretNotFound"
        )
        assert "hf-missing" in missing["message"]
        assert "spec.hfTokenSecretRef" in missing["message"]
        try:
            unschedulable = wait_for(
                lambda: degraded("nogpu", "Unschedulable"), 120, interval=1, what="Unschedulable"
            )
        except TimeoutError:
            body = kubectl.get("nemotrondeployment", "nogpu", namespace) or {}
            pods = kubectl.run("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
            raise AssertionError(f"not Unschedulable: {body.get('status')}\n{pods}") from None
        assert "nogpu-on" in unschedulable["message"]
        assert "node" in unschedulable["message"]
        # Events tell what failed.
        events = kubectl.run(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            "involvedObject.name=nosecret",
            "-o",
            "name",
        ).stdout
        assert events.strip() != ""
        # The operator never crashed, and fixing the input heals the CR.
        assert operator.process is not None
        assert operator.process.poll() is None
        kubectl.run(
            "create", "secret", "generic", "hf-missing", "-n", namespace, "--from-literal=token=x"
        )
        wait_for(
            lambda: degraded("nosecret", "SecretNotFound") is None,
            90,
            interval=1,
            what="SecretNotFound cleared",
        )
    finally:
        operator.stop()

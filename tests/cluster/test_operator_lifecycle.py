"""The operator against the real local control plane: a NemotronDeployment becomes every
object of docs/contracts.md, engine pods land on GPU nodes, status reaches Ready; policy edits
change only the router config; a model change rolls the engines; deletion garbage-collects
everything; a killed and restarted operator makes no duplicates and no rollout; two CRs in
two namespaces stay apart. The operator runs as a subprocess watching only the test's
namespaces."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.operator_harness import Kubectl, OperatorProcess, nemotron
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

SPEC: dict[str, Any] = {
    "model": {"preset": "nano-4b-v1.1"},
    "pools": {
        "reasoningOn": {"replicas": {"min": 1, "max": 2}, "maxModelLen": 32768},
        "reasoningOff": {"replicas": {"min": 1, "max": 2}, "maxModelLen": 32768},
    },
}
READY_TIMEOUT = 240
CHILDREN = [
    ("configmap", "{n}-engine"),
    ("configmap", "{n}-router"),
    ("deployment", "{n}-on"),
    ("deployment", "{n}-off"),
    ("service", "{n}-on"),
    ("service", "{n}-off"),
    ("poddisruptionbudget", "{n}-on"),
    ("poddisruptionbudget", "{n}-off"),
    ("deployment", "{n}"),
    ("service", "{n}"),
]


@pytest.fixture
def two_namespaces(kubectl: Kubectl) -> Iterator[list[str]]:
    with kubectl.namespaces(2) as names:
        yield names


@pytest.fixture
def operator(two_namespaces: list[str], tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(namespaces=two_namespaces, log_path=tmp_path / "operator.log").start()
    try:
        process.wait_until_serving()
        yield process
    finally:
        process.stop()


def _condition(body: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for condition in ((body or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] == kind:
            return dict(condition)
    return {}


def _wait_ready(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        body = kubectl.get("nemotrondeployment", name, namespace)
        if _condition(body, "Ready").get("status") == "True":
            return body
        return None

    try:
        return wait_for(ready, READY_TIMEOUT, interval=1, what=f"{namespace}/{name} Ready")
    except TimeoutError:
        body = kubectl.get("nemotrondeployment", name, namespace)
        pods = kubectl.run("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
        raise AssertionError(
            f"not Ready: {yaml.safe_dump((body or {}).get('status'))}\n{pods}"
        ) from None


def _children_versions(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    """What a reconcile could change in each child: generation, spec/data, and the time of the
    operator's last effective apply (a no-op server-side apply leaves it as it was). Not the
    resourceVersion: status updates by the Deployment controller bump that too."""
    versions = {}
    for kind, pattern in CHILDREN:
        result = kubectl.run(
            "get",
            kind,
            pattern.format(n=name),
            "-n",
            namespace,
            "-o",
            "json",
            "--show-managed-fields",
        )
        obj = json.loads(result.stdout)
        applied = sorted(
            (entry.get("operation"), entry.get("time"))
            for entry in obj["metadata"].get("managedFields", [])
            if entry["manager"] == "nemotron-operator" and entry.get("subresource") is None
        )
        versions[f"{kind}/{obj['metadata']['name']}"] = (
            obj["metadata"].get("generation"),
            json.dumps(obj.get("spec") or obj.get("data"), sort_keys=True),
            applied,
        )
    return versions


def _template_generation(kubectl: Kubectl, name: str, namespace: str) -> dict[str, int]:
    out = {}
    for deployment in (f"{name}-on", f"{name}-off", name):
        obj = kubectl.get("deployment", deployment, namespace)
        assert obj is not None
        out[deployment] = obj["metadata"]["generation"]
    return out


def test_apply_update_model_change_and_delete(
    kubectl: Kubectl, two_namespaces: list[str], operator: OperatorProcess
) -> None:
    namespace = two_namespaces[0]
    kubectl.apply(nemotron("nano", namespace, SPEC))
    body = _wait_ready(kubectl, "nano", namespace)
    uid = body["metadata"]["uid"]
    assert body["status"]["endpoint"] == f"http://nano.{namespace}.svc.cluster.local/v1"
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    assert body["status"]["pools"]["on"]["replicas"] == "1/1"

    # Every object, owned by the CR, with the contract labels.
    for kind, pattern in CHILDREN:
        obj = kubectl.get(kind, pattern.format(n="nano"), namespace)
        assert obj is not None, (kind, pattern)
        assert obj["metadata"]["ownerReferences"][0]["uid"] == uid
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "nemotron-operator"
        full = json.loads(
            kubectl.run(
                "get",
                kind,
                pattern.format(n="nano"),
                "-n",
                namespace,
                "-o",
                "json",
                "--show-managed-fields",
            ).stdout
        )
        managers = {entry["manager"] for entry in full["metadata"].get("managedFields", [])}
        assert "nemotron-operator" in managers

    # Engine pods are on nodes that have GPUs.
    pods = kubectl.list("pods", namespace, "serving.nemotron.dev/pool")
    assert len(pods) == 2
    for pod in pods:
        node = kubectl.run("get", "node", pod["spec"]["nodeName"], "-o", "json")
        allocatable = yaml.safe_load(node.stdout)["status"]["allocatable"]
        assert int(allocatable.get("nvidia.com/gpu", "0")) >= 1, pod["spec"]["nodeName"]

    # Sampling/maxTokens: the router config changes, no Deployment's template does.
    generations = _template_generation(kubectl, "nano", namespace)
    changed = copy.deepcopy(SPEC)
    changed["pools"]["reasoningOn"]["sampling"] = {"temperature": 0.7, "topP": 0.9}
    changed["pools"]["reasoningOff"]["maxTokens"] = 4096
    kubectl.apply(nemotron("nano", namespace, changed))

    def router_config() -> dict[str, Any] | None:
        cm = kubectl.get("configmap", "nano-router", namespace)
        config = yaml.safe_load((cm or {}).get("data", {}).get("config.yaml", "{}"))
        pools = {p["name"]: p for p in config.get("pools", [])}
        if (
            pools.get("on", {}).get("temperature") == 0.7
            and pools.get("off", {}).get("max_tokens") == 4096
        ):
            return config
        return None

    wait_for(router_config, 60, interval=0.5, what="router config updated")
    assert _template_generation(kubectl, "nano", namespace) == generations

    # A model change rolls the engines (and only them).
    changed["model"] = {"preset": "nano-8b-v1"}
    kubectl.apply(nemotron("nano", namespace, changed))

    def rolled() -> bool:
        now = _template_generation(kubectl, "nano", namespace)
        return now["nano-on"] > generations["nano-on"] and now["nano-off"] > generations["nano-off"]

    wait_for(rolled, 60, interval=0.5, what="engine Deployments rolled")
    assert _template_generation(kubectl, "nano", namespace)["nano"] == generations["nano"]
    deployment = kubectl.get("deployment", "nano-on", namespace)
    assert deployment is not None
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]
        == "nvidia/Llama-3.1-Nemotron-Nano-8B-v1"
    )

    # Delete: everything is garbage-collected.
    kubectl.run("delete", "nemotrondeployment", "nano", "-n", namespace, "--wait=false")

    def gone() -> bool:
        return all(
            kubectl.get(kind, pattern.format(n="nano"), namespace) is None
            for kind, pattern in CHILDREN
        )

    wait_for(gone, 120, interval=1, what="children garbage-collected")


def test_restart_changes_nothing_and_scale_is_respected(
    kubectl: Kubectl, two_namespaces: list[str], operator: OperatorProcess, tmp_path: Path
) -> None:
    namespace = two_namespaces[0]
    kubectl.apply(nemotron("nano", namespace, SPEC))
    # Kill it mid-reconcile: right after the first object appears.
    wait_for(
        lambda: kubectl.get("configmap", "nano-engine", namespace),
        60,
        interval=0.1,
        what="first child",
    )
    operator.kill()
    second = OperatorProcess(
        namespaces=two_namespaces, log_path=tmp_path / "operator-2.log"
    ).start()
    try:
        second.wait_until_serving()
        _wait_ready(kubectl, "nano", namespace)
        # kubectl scale within min..max is left alone by the operator.
        kubectl.run("scale", "deployment/nano-on", "-n", namespace, "--replicas=2")
        wait_for(
            lambda: (
                (kubectl.get("deployment", "nano-on", namespace) or {})
                .get("status", {})
                .get("readyReplicas")
                == 2
            ),
            READY_TIMEOUT,
            interval=1,
            what="scaled pool ready",
        )
        _wait_ready(kubectl, "nano", namespace)
        before = _children_versions(kubectl, "nano", namespace)
        replica_sets = kubectl.list("replicasets", namespace, "serving.nemotron.dev/pool=on")
        assert len(replica_sets) == 1, "a rollout happened"
        reconciles = second.metric("nemotron_operator_reconciles_total")
    finally:
        second.stop()
    third = OperatorProcess(namespaces=two_namespaces, log_path=tmp_path / "operator-3.log").start()
    try:
        third.wait_until_serving()
        wait_for(
            lambda: third.metric("nemotron_operator_reconciles_total") >= 1,
            60,
            interval=0.5,
            what="resume reconcile",
        )
        assert reconciles >= 1
        assert _children_versions(kubectl, "nano", namespace) == before
        deployment = kubectl.get("deployment", "nano-on", namespace)
        assert deployment is not None
        assert deployment["spec"]["replicas"] == 2
        assert len(kubectl.list("replicasets", namespace, "serving.nemotron.dev/pool=on")) == 1
        assert len(kubectl.list("pods", namespace, "serving.nemotron.dev/pool=on")) == 2
        # Narrowing max below the current count clamps it.
        narrowed = copy.deepcopy(SPEC)
        narrowed["pools"]["reasoningOn"]["replicas"] = {"min": 1, "max": 1}
        kubectl.apply(nemotron("nano", namespace, narrowed))
        wait_for(
            lambda: (
                (kubectl.get("deployment", "nano-on", namespace) or {})
                .get("spec", {})
                .get("replicas")
                == 1
            ),
            60,
            interval=0.5,
            what="replicas clamped to max",
        )
    finally:
        third.stop()


def test_two_namespaces_stay_isolated(
    kubectl: Kubectl, two_namespaces: list[str], operator: OperatorProcess
) -> None:
    first, second = two_namespaces
    one_pool = {
        "model": {"preset": "nano-4b-v1.1"},
        "pools": {"reasoningOn": {"enabled": False}, "reasoningOff": {"maxModelLen": 16384}},
    }
    kubectl.apply(nemotron("same", first, one_pool))
    kubectl.apply(nemotron("same", second, {**one_pool, "servedModelName": "other"}))
    a = _wait_ready(kubectl, "same", first)
    b = _wait_ready(kubectl, "same", second)
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    for namespace, served in ((first, "Llama-Nemotron-Nano-4B-v1.1"), (second, "other")):
        config = yaml.safe_load(
            (kubectl.get("configmap", "same-router", namespace) or {})["data"]["config.yaml"]
        )
        assert config["served_model_name"] == served
        for pool in config["pools"]:
            assert pool["namespace"] == namespace
        assert kubectl.get("deployment", "same-on", namespace) is None
    kubectl.run("delete", "nemotrondeployment", "same", "-n", first, "--wait=false")
    wait_for(
        lambda: kubectl.get("deployment", "same", first) is None,
        120,
        interval=1,
        what="first deleted",
    )
    assert kubectl.get("deployment", "same", second) is not None
    assert (
        _condition(kubectl.get("nemotrondeployment", "same", second), "Ready").get("status")
        == "True"
    )

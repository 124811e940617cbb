"""The router's pod watch (router.endpoints.PodWatch) against the local cluster's real API
server: pods appear as endpoints only when Ready with an IP, leave when not Ready, terminating
or deleted.

The pods carry a scheduling gate, so no node runs them and no controller touches them; the
test writes their status itself through the status subresource, as a kubelet would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from nemotron_operator.router.endpoints import PodWatch
from nemotron_operator.router.kubeapi import load_kube_access
from tests.cluster.operator_harness import KUBECONFIG, Kubectl
from tests.support.waiting import await_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

SELECTOR = "app.kubernetes.io/name=router-endpoints-test"


@pytest.fixture(scope="module")
def needs_crd() -> bool:
    """These tests make plain Pods, never a NemotronDeployment, so ``kubectl`` (the shared
    fixture of tests/support/kube.py) leaves the CRD alone."""
    return False


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    with kubectl.namespaces(1, prefix="router-ep") as names:
        yield names[0]


def pod(name: str, namespace: str, *, finalizer: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/name": "router-endpoints-test"},
    }
    if finalizer:
        metadata["finalizers"] = ["serving.nemotron.dev/test-hold"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "schedulingGates": [{"name": "serving.nemotron.dev/test-never-run"}],
            "containers": [{"name": "engine", "image": "vllm/vllm-openai:latest"}],
        },
    }


def set_status(kubectl: Kubectl, name: str, namespace: str, *, ip: str, ready: bool) -> None:
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    }
    kubectl.run(
        "patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip


async def test_watch_follows_pod_readiness(
    kubectl: Kubectl, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(KUBECONFIG))
    for variable in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(variable, raising=False)
    seen: list[list[str]] = []
    watch = PodWatch(
        load_kube_access(),
        namespace=namespace,
        label_selector=SELECTOR,
        port=8000,
        on_change=seen.append,
    )

    async def kubectl_do(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def urls_are(expected: list[str]) -> None:
        async def check() -> bool:
            return watch.urls == expected

        await await_for(check, 30, what=f"watched endpoints == {expected}")

    watch.start()
    try:
        await urls_are([])
        await kubectl_do(kubectl.apply, pod("engine-a", namespace))
        await kubectl_do(set_status, kubectl, "engine-a", namespace, ip="127.0.99.1", ready=False)
        await kubectl_do(kubectl.apply, pod("engine-b", namespace, finalizer=True))
        await kubectl_do(set_status, kubectl, "engine-b", namespace, ip="127.0.99.2", ready=True)
        await urls_are(["http://127.0.99.2:8000"])  # a is not Ready yet
        await kubectl_do(set_status, kubectl, "engine-a", namespace, ip="127.0.99.1", ready=True)
        await urls_are(["http://127.0.99.1:8000", "http://127.0.99.2:8000"])
        # Terminating: b has a finalizer, so it stays with a deletionTimestamp.
        await kubectl_do(kubectl.run, "delete", "pod", "engine-b", "-n", namespace, "--wait=false")
        await urls_are(["http://127.0.99.1:8000"])
        await kubectl_do(set_status, kubectl, "engine-a", namespace, ip="127.0.99.1", ready=False)
        await urls_are([])
        await kubectl_do(set_status, kubectl, "engine-a", namespace, ip="127.0.99.1", ready=True)
        await urls_are(["http://127.0.99.1:8000"])
        await kubectl_do(kubectl.run, "delete", "pod", "engine-a", "-n", namespace, "--wait=true")
        await urls_are([])
        assert seen[-1] == []
        assert ["http://127.0.99.1:8000", "http://127.0.99.2:8000"] in seen
    finally:
        await watch.stop()
        kubectl.run(
            "patch", "pod", "engine-b", "-n", namespace, "--type=json",
            "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]', check=False,
        )  # fmt: skip

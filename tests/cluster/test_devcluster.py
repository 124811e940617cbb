"""The five proofs that the local cluster is real Kubernetes: scheduling on simulated GPU
nodes, unschedulable pods, the pod runner, RBAC, and garbage collection."""

from __future__ import annotations

import ipaddress
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Kube
from tests.support.waiting import wait_for

LOOPBACK_PODS = ipaddress.ip_network("127.20.0.0/16")


def _server_container(port: int, gpus: int | None = 1) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "server",
        "image": "python:3.11-slim",
        "command": ["python", "-m", "tests.support.podserver", str(port)],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    if gpus is not None:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return container


def _deployment(name: str, replicas: int, port: int = 9000) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [_server_container(port)],
                    "terminationGracePeriodSeconds": 5,
                },
            },
        },
    }


def _ready_pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods = kube.get("pods", "-n", namespace, "-l", selector)["items"]
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
    ]


def _process_runs(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return str(resp.read().decode())


def test_gpu_deployment_is_scheduled_ready_and_spread(kube: Kube, namespace: str) -> None:
    kube.apply(_deployment("gpu", 1), namespace)
    pods = wait_for(
        lambda: (
            len(_ready_pods(kube, namespace, "app=gpu")) == 1
            and _ready_pods(kube, namespace, "app=gpu")
        ),
        60,
        what="one Ready GPU pod",
    )
    pod = pods[0]
    node = kube.get("node", pod["spec"]["nodeName"])
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"].startswith("NVIDIA-")
    assert ipaddress.ip_address(pod["status"]["podIP"]) in LOOPBACK_PODS

    kube.kubectl("scale", "-n", namespace, "deployment/gpu", "--replicas=3")
    pods = wait_for(
        lambda: (
            len(_ready_pods(kube, namespace, "app=gpu")) == 3
            and _ready_pods(kube, namespace, "app=gpu")
        ),
        60,
        what="three Ready GPU pods",
    )
    ips = {p["status"]["podIP"] for p in pods}
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert len(ips) == 3
    assert len(nodes) == 3, f"the scheduler should spread 3 replicas over 3 of 4 nodes, got {nodes}"
    for ip in ips:
        assert _http(f"http://{ip}:9000/healthz") == "ok"


def test_pod_asking_more_gpus_than_any_node_stays_pending(kube: Kube, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy"},
        "spec": {"containers": [_server_container(9001, gpus=9)]},
    }
    kube.apply(pod, namespace)

    def failed_scheduling() -> str:
        events = kube.get(
            "events", "-n", namespace, "--field-selector", "involvedObject.name=greedy"
        )["items"]
        return next((e["message"] for e in events if e["reason"] == "FailedScheduling"), "")

    message = wait_for(failed_scheduling, 30, what="a FailedScheduling event")
    assert "nvidia.com/gpu" in message
    current = kube.get("pod", "-n", namespace, "greedy")
    assert current["status"]["phase"] == "Pending"
    assert not current["spec"].get("nodeName")


def test_pod_runner_runs_the_process_with_mounts_and_stops_it(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"greeting": "hello"},
        },
        namespace,
    )
    container = _server_container(9002, gpus=None)
    container["volumeMounts"] = [
        {"name": "cfg", "mountPath": "/etc/podserver-test", "readOnly": True}
    ]
    container["env"] = [
        {"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "runner", "labels": {"app": "runner"}},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
            "terminationGracePeriodSeconds": 5,
        },
    }
    kube.apply(pod, namespace)
    ready = wait_for(lambda: _ready_pods(kube, namespace, "app=runner"), 60, what="the pod Ready")
    ip = ready[0]["status"]["podIP"]
    pid = int(_http(f"http://{ip}:9002/pid"))
    assert _http(f"http://{ip}:9002/file?path=/etc/podserver-test/greeting") == "hello"
    assert _http(f"http://{ip}:9002/env?name=MY_NAMESPACE") == namespace
    assert _process_runs(pid)
    logs = kube.kubectl("logs", "-n", namespace, "runner").stdout
    assert f"podserver serving on {ip}:9002" in logs

    kube.kubectl("delete", "pod", "-n", namespace, "runner", "--wait=false")
    wait_for(lambda: not _process_runs(pid), 30, what="the pod's process to stop")
    wait_for(
        lambda: not kube.get("pods", "-n", namespace, "-l", "app=runner")["items"],
        30,
        what="the pod removed",
    )
    with pytest.raises(OSError, match=r"refused|timed out"):
        _http(f"http://{ip}:9002/healthz")


def test_rbac_is_enforced_for_a_pods_service_account(kube: Kube, namespace: str) -> None:
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "narrow"}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-configmaps"},
                "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "narrow"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-configmaps",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "narrow", "namespace": namespace}],
            },
        ],
        namespace,
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "rbac", "labels": {"app": "rbac"}},
        "spec": {
            "serviceAccountName": "narrow",
            "containers": [_server_container(9003, gpus=None)],
            "terminationGracePeriodSeconds": 1,
        },
    }
    kube.apply(pod, namespace)
    ip = wait_for(lambda: _ready_pods(kube, namespace, "app=rbac"), 60, what="the pod Ready")[0][
        "status"
    ]["podIP"]
    inside = _http(f"http://{ip}:9003/k8s?path=/api/v1/namespaces/{namespace}/configmaps")
    outside = _http(f"http://{ip}:9003/k8s?path=/api/v1/namespaces/{namespace}/secrets")
    other_ns = _http(f"http://{ip}:9003/k8s?path=/api/v1/namespaces/kube-system/configmaps")
    assert (inside, outside, other_ns) == ("200", "403", "403")


def test_garbage_collection_removes_dependents(kube: Kube, namespace: str) -> None:
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace)
    owner_uid = kube.get("configmap", "-n", namespace, "owner")["metadata"]["uid"]
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dependent",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
                ],
            },
        },
        namespace,
    )
    assert (
        kube.kubectl("get", "configmap", "-n", namespace, "dependent", check=False).returncode == 0
    )
    kube.kubectl("delete", "configmap", "-n", namespace, "owner")
    wait_for(
        lambda: (
            kube.kubectl("get", "configmap", "-n", namespace, "dependent", check=False).returncode
            != 0
        ),
        60,
        what="the dependent ConfigMap garbage-collected",
    )


def test_claims_of_the_default_class_are_provisioned_and_mounted(
    kube: Kube, namespace: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "cache"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    kube.apply(claim, namespace)
    wait_for(
        lambda: kube.get("pvc", "-n", namespace, "cache")["status"].get("phase") == "Bound",
        30,
        what="the claim Bound by the default class",
    )
    container = _server_container(9004, gpus=None)
    container["volumeMounts"] = [{"name": "cache", "mountPath": "/models-test"}]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pvc-user", "labels": {"app": "pvc-user"}},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}],
            "terminationGracePeriodSeconds": 1,
        },
    }
    claim_dir = kube.cluster.state / "pvcs" / namespace / "cache"
    kube.apply(pod, namespace)
    ip = wait_for(lambda: _ready_pods(kube, namespace, "app=pvc-user"), 60, what="the pod Ready")[
        0
    ]["status"]["podIP"]
    (claim_dir / "weights.txt").write_text("bf16")
    assert _http(f"http://{ip}:9004/file?path=/models-test/weights.txt") == "bf16"

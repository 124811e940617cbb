"""The Kubernetes client adapter against a loopback HTTP server standing in for the
apiserver's wire format: paths, server-side apply parameters, error mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client as k8s_client

from nemotron_operator.kube.client import Conflict, KubeClient, KubeError, resource_path

Seen = list[dict[str, Any]]


@pytest.fixture
async def fake_apiserver() -> AsyncIterator[tuple[KubeClient, Seen]]:
    seen: Seen = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "content_type": request.headers.get("Content-Type"),
                "body": json.loads(body) if body else None,
            }
        )
        name = request.path.rsplit("/", 1)[-1]
        if request.method == "POST":
            name = json.loads(body)["metadata"]["name"]
        if name == "missing":
            return web.json_response(
                {"kind": "Status", "reason": "NotFound", "message": "x"}, status=404
            )
        if name == "taken":
            return web.json_response(
                {"kind": "Status", "reason": "AlreadyExists", "message": "exists"}, status=409
            )
        if name == "bad":
            return web.json_response(
                {"kind": "Status", "reason": "Invalid", "message": "spec.template: Invalid value"},
                status=422,
            )
        return web.json_response({"metadata": {"name": name}, "echo": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    cfg = k8s_client.Configuration()
    cfg.host = f"http://127.0.0.1:{port}"
    cfg.api_key = {"authorization": "t0ken"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    client = KubeClient(cfg, field_manager="nemotron-operator")
    try:
        yield client, seen
    finally:
        await client.aclose()
        await runner.cleanup()


def test_paths() -> None:
    assert resource_path("v1", "ConfigMap", "ns", "a") == "/api/v1/namespaces/ns/configmaps/a"
    assert resource_path("apps/v1", "Deployment", "ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert (
        resource_path("serving.nemotron.dev/v1alpha1", "NemotronDeployment", "ns", "n")
        == "/apis/serving.nemotron.dev/v1alpha1/namespaces/ns/nemotrondeployments/n"
    )


async def test_apply_is_server_side_apply(fake_apiserver: tuple[KubeClient, Seen]) -> None:
    client, seen = fake_apiserver
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}
    await client.apply(obj)
    request = seen[-1]
    assert request["method"] == "PATCH"
    assert request["path"] == "/api/v1/namespaces/ns/configmaps/a"
    assert request["content_type"] == "application/apply-patch+yaml"
    assert request["query"] == {"fieldManager": "nemotron-operator", "force": "true"}
    assert request["body"] == obj
    assert client.counter.by_method == {"PATCH": 1}


async def test_scale_subresource_patch(fake_apiserver: tuple[KubeClient, Seen]) -> None:
    client, seen = fake_apiserver
    await client.patch_merge(
        "apps/v1", "Deployment", "ns", "d", body={"spec": {"replicas": 2}}, subresource="scale"
    )
    assert seen[-1]["path"] == "/apis/apps/v1/namespaces/ns/deployments/d/scale"
    assert seen[-1]["content_type"] == "application/merge-patch+json"


async def test_errors(fake_apiserver: tuple[KubeClient, Seen]) -> None:
    client, _ = fake_apiserver
    assert await client.get("v1", "Secret", "ns", "missing") is None
    assert await client.delete("v1", "Secret", "ns", "missing") is False
    with pytest.raises(Conflict):
        await client.create(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "taken", "namespace": "ns"}}
        )
    with pytest.raises(KubeError) as caught:
        await client.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "bad", "namespace": "ns"},
            }
        )
    assert caught.value.status == 422
    assert "spec.template" in caught.value.message

"""The router on the local cluster: a NemotronDeployment's router pod (run by the pod runner
from the project's image entrypoint) finds the engine pods by watching Pods, and scaling a
pool up and down under steady streaming load changes the set without one failed request."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.cluster.operator_harness import Kubectl, OperatorProcess, nemotron
from tests.support.waiting import await_for, wait_for

NAME = "routed"


@pytest.fixture
def deployed(kubectl: Kubectl, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with kubectl.namespaces(1, prefix="route") as (ns,):
        operator = OperatorProcess(namespaces=[ns], log_path=tmp_path / "operator.log").start()
        try:
            operator.wait_until_serving()
            pool = {"replicas": {"min": 1, "max": 4}, "autoscaling": {"enabled": False}}
            spec = {
                "model": {"preset": "nano-4b-v1.1"},
                "pools": {"reasoningOn": {**pool, "enabled": False}, "reasoningOff": pool},
                "router": {"replicas": 1},
            }
            kubectl.apply(nemotron(NAME, ns, spec))

            def ready() -> dict[str, Any] | None:
                body = kubectl.get("nemotrondeployment", NAME, ns) or {}
                conds = (body.get("status") or {}).get("conditions") or []
                return (
                    body
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
                    else None
                )

            wait_for(ready, 120, interval=0.5, what="the NemotronDeployment Ready")
            router = wait_for(
                lambda: _ready_ips(kubectl, ns, "app.kubernetes.io/component=router"), 60
            )
            yield ns, router[0]
        finally:
            operator.stop()


def _ready_ips(kubectl: Kubectl, ns: str, selector: str) -> list[str]:
    ips = []
    for pod in kubectl.list("pods", ns, f"serving.nemotron.dev/deployment={NAME},{selector}"):
        conds = pod.get("status", {}).get("conditions") or []
        if not pod["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in conds
        ):
            ips.append(pod["status"]["podIP"])
    return sorted(ips)


def _router_endpoints(router_ip: str) -> float:
    text = httpx.get(f"http://{router_ip}:8080/metrics", timeout=5).text
    match = re.search(r'^nemotron_router_endpoints\{pool="off"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else -1.0


def _engine_requests(ip: str) -> float:
    text = httpx.get(f"http://{ip}:8000/metrics", timeout=5).text
    return sum(
        float(m) for m in re.findall(r"^vllm:request_success_total\{[^}]*\} (\S+)$", text, re.M)
    )


async def test_scaling_a_pool_changes_the_endpoints_without_failed_requests(
    kubectl: Kubectl, deployed: tuple[str, str]
) -> None:
    ns, router_ip = deployed
    client = openai.AsyncOpenAI(
        base_url=f"http://{router_ip}:8080/v1", api_key="-", max_retries=0, timeout=60
    )
    model = (await client.models.list()).data[0].id
    failures: list[str] = []
    completed = 0
    stop = asyncio.Event()

    async def worker(i: int) -> None:
        nonlocal completed
        while not stop.is_set():
            try:
                stream = await client.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": "detailed thinking off"},
                        {"role": "user", "content": f"Say something about {i}."},
                    ],
                    max_tokens=64,
                    stream=True,
                )
                async for _ in stream:
                    pass
                completed += 1
            except openai.APIError as exc:
                failures.append(repr(exc))

    workers = [asyncio.create_task(worker(i)) for i in range(8)]
    try:

        async def endpoints_are(n: int) -> bool:
            engines = await asyncio.to_thread(
                _ready_ips, kubectl, ns, "serving.nemotron.dev/pool=off"
            )
            return len(engines) == n and await asyncio.to_thread(_router_endpoints, router_ip) == n

        await await_for(lambda: endpoints_are(1), 30, what="one engine known to the router")
        await asyncio.to_thread(
            kubectl.run, "scale", "-n", ns, f"deployment/{NAME}-off", "--replicas=3"
        )
        await await_for(
            lambda: endpoints_are(3), 60, interval=0.2, what="three engines known to the router"
        )
        engines = await asyncio.to_thread(_ready_ips, kubectl, ns, "serving.nemotron.dev/pool=off")

        async def all_engines_served() -> bool:
            counts = await asyncio.gather(
                *(asyncio.to_thread(_engine_requests, ip) for ip in engines)
            )
            return all(c > 0 for c in counts)

        await await_for(all_engines_served, 30, what="every engine served requests")
        await asyncio.to_thread(
            kubectl.run, "scale", "-n", ns, f"deployment/{NAME}-off", "--replicas=1"
        )
        await await_for(lambda: endpoints_are(1), 60, interval=0.2, what="back to one engine")
        before = completed

        async def traffic_goes_on() -> bool:
            return completed > before + 20

        await await_for(traffic_goes_on, 30, what="traffic goes on after the scale-down")
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await client.close()
    assert failures == []
    assert completed > 50

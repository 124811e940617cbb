"""Queue-depth autoscaling end to end on the local cluster (issue 6): the operator
(``nemotron-operator run``, its per-CR autoscaling daemon), the router Deployment and emulated
vLLM engine pods, driven by real streaming OpenAI requests through the router.

- Burst: one autoscaled pool (min 1, max 4, two sequences per engine) gets more concurrent
  streams than one replica holds; the pool scales up through ``/scale`` within seconds, and
  back to min when the burst ends, while long streams are still in flight on the pods being
  removed -- every stream finishes without error (the router drops terminating pods, the
  engine drains within ``--shutdown-timeout``, the grace period covers preStop + drain).
- Wake from zero: a pool with ``replicas.min: 0`` is created at zero replicas; a request is
  held by the router (``nemotron_router_queue_depth``), the loop wakes the pool and the held
  request is answered; the hold time for a 5 s emulated startup is printed.

The scenario helpers here (specs, timeline sampler, stream client) are also used by
tests/perf/bench_autoscaling_e2e.py, which prints the timeline and the hold time. The operator
runs as a subprocess through tests/cluster/operator_harness.py, watching only the test's
namespace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from nemotron_operator.autoscaler.loop import STATE_ANNOTATION
from nemotron_operator.kube.client import KubeClient
from tests.cluster.operator_harness import KUBECONFIG, Kubectl, OperatorProcess, nemotron
from tests.support.kube import Kube
from tests.support.waiting import await_for

__all__ = [
    "MODEL",
    "Sample",
    "StreamResult",
    "Timeline",
    "burst_spec",
    "operator_for",
    "router_url",
    "run_burst",
    "stream_one",
    "wait_ready",
    "wake_spec",
]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = "Llama-Nemotron-Nano-4B-v1.1"
CR_API = "serving.nemotron.dev/v1alpha1"
# Emulated decode speed: at 0.1 one engine step takes ~50 ms, i.e. ~20 tokens/s per stream,
# so a 60-token answer lasts ~3 s and a 240-token one ~12 s, at a CPU cost this 2-core
# machine can carry for a dozen streams.
EMULATOR_SPEED = "0.1"
SLOTS = 2  # --max-num-seqs: a third concurrent stream on one engine waits


def _pool(
    *, replicas: dict[str, int], autoscaling: dict[str, Any], env: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "maxModelLen": 4096,
        "maxTokens": 2048,
        "engineArgs": [f"--max-num-seqs={SLOTS}"],
        # Long enough for the longest stream of the test to finish while its pod stops.
        "shutdownTimeoutSeconds": 30,
        "env": env,
        "autoscaling": {"enabled": True, "intervalSeconds": 1, **autoscaling},
    }


def burst_spec(*, max_replicas: int = 4) -> dict[str, Any]:
    """One pool, min 1, fast windows: up at once, down after 2 decisions over 5 s."""
    return {
        "model": {"preset": "nano-4b-v1.1"},
        "pools": {
            "reasoningOn": _pool(
                replicas={"min": 1, "max": max_replicas},
                autoscaling={
                    "targetQueuePerReplica": 1,
                    "scaleDownStabilizationSeconds": 5,
                    "scaleDownConsecutive": 2,
                },
                env=[{"name": "NEMOTRON_EMULATOR_SPEED", "value": EMULATOR_SPEED}],
            ),
            "reasoningOff": {"enabled": False},
        },
        "router": {"defaultMode": "on"},
    }


def wake_spec(*, startup_seconds: float) -> dict[str, Any]:
    """One pool at min 0 whose engines take ``startup_seconds`` to load."""
    return {
        "model": {"preset": "nano-4b-v1.1"},
        "pools": {
            "reasoningOn": _pool(
                replicas={"min": 0, "max": 2},
                autoscaling={
                    "targetQueuePerReplica": 1,
                    "scaleDownStabilizationSeconds": 5,
                    "scaleDownConsecutive": 2,
                    "scaleToZeroIdleSeconds": 5,
                },
                env=[
                    {"name": "NEMOTRON_EMULATOR_SPEED", "value": EMULATOR_SPEED},
                    {"name": "NEMOTRON_EMULATOR_STARTUP_SECONDS", "value": f"{startup_seconds:g}"},
                ],
            ),
            "reasoningOff": {"enabled": False},
        },
        "router": {"defaultMode": "on"},
    }


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One point of the timeline (seconds since the timeline's start)."""

    t: float
    desired: int
    ready: int
    queue: float
    inflight: float
    # Streams the serving engines run and hold waiting (vLLM's own queue).
    running: float = 0.0
    waiting: float = 0.0
    # Engine pods being deleted, and the streams they still run or hold (their drain).
    terminating: int = 0
    draining: float = 0.0


@dataclass(kw_only=True)
class Timeline:
    """Samples the pool Deployment and the router's metrics every ``period`` seconds."""

    kube: KubeClient
    http: httpx.AsyncClient
    namespace: str
    deployment: str
    router: str
    pool: str = "on"
    period: float = 0.5
    start: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def _engine_load(self, ip: str) -> tuple[float, float]:
        """(running, waiting) of one engine pod; zeros when it does not answer."""
        try:
            text = (await self.http.get(f"http://{ip}:8000/metrics", timeout=2)).text
        except httpx.HTTPError:
            return 0.0, 0.0
        load = {"vllm:num_requests_running": 0.0, "vllm:num_requests_waiting": 0.0}
        for line in text.splitlines():
            metric = line.partition("{")[0]
            if metric in load:
                load[metric] += float(line.rsplit(" ", 1)[1])
        return load["vllm:num_requests_running"], load["vllm:num_requests_waiting"]

    async def sample(self) -> Sample:
        obj = await self.kube.get("apps/v1", "Deployment", self.namespace, self.deployment) or {}
        pods = await self.kube.list_objects(
            "v1", "Pod", self.namespace, label_selector=f"serving.nemotron.dev/pool={self.pool}"
        )
        with_ip = [p for p in pods if (p.get("status") or {}).get("podIP")]
        loads = await asyncio.gather(
            *(self._engine_load(str(p["status"]["podIP"])) for p in with_ip)
        )
        stopping = [bool(p["metadata"].get("deletionTimestamp")) for p in with_ip]
        queue = inflight = float("nan")
        try:
            text = (await self.http.get(f"{self.router}/metrics", timeout=2)).text
        except httpx.HTTPError:
            text = ""
        for line in text.splitlines():
            if f'pool="{self.pool}"' not in line:
                continue
            if line.startswith("nemotron_router_queue_depth{"):
                queue = float(line.rsplit(" ", 1)[1])
            elif line.startswith("nemotron_router_inflight_requests{"):
                inflight = float(line.rsplit(" ", 1)[1])
        point = Sample(
            t=time.monotonic() - self.start,
            desired=int((obj.get("spec") or {}).get("replicas", 0)),
            ready=int((obj.get("status") or {}).get("readyReplicas", 0) or 0),
            queue=queue,
            inflight=inflight,
            running=sum(r for (r, _), stop in zip(loads, stopping, strict=True) if not stop),
            waiting=sum(w for (_, w), stop in zip(loads, stopping, strict=True) if not stop),
            terminating=sum(stopping),
            draining=sum(r + w for (r, w), stop in zip(loads, stopping, strict=True) if stop),
        )
        self.samples.append(point)
        return point

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # a slow API call must not end the timeline
                self.errors.append(repr(exc))
            await asyncio.sleep(self.period)

    def first(self, predicate: Callable[[Sample], bool], after: float = 0.0) -> Sample | None:
        return next((s for s in self.samples if s.t >= after and predicate(s)), None)


@dataclass(frozen=True, kw_only=True)
class StreamResult:
    """One streaming request, times relative to the timeline's start."""

    label: str
    start: float
    first_token: float | None
    end: float
    chunks: int
    finish_reason: str | None
    error: str | None


async def stream_one(
    client: AsyncOpenAI, *, max_tokens: int, label: str, t0: float
) -> StreamResult:
    """Stream one chat completion of exactly ``max_tokens`` tokens (``ignore_eos``)."""
    start = time.monotonic() - t0
    first: float | None = None
    chunks = 0
    finish: str | None = None
    try:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Explain step {label} of the plan."}],
            max_tokens=max_tokens,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        async for chunk in stream:
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if first is None:
                first = time.monotonic() - t0
            chunks += 1
            finish = choice.finish_reason or finish
    except Exception as exc:  # recorded: the test asserts there is none
        error: str | None = repr(exc)
    else:
        error = None
    return StreamResult(
        label=label,
        start=start,
        first_token=first,
        end=time.monotonic() - t0,
        chunks=chunks,
        finish_reason=finish,
        error=error,
    )


async def router_url(kube: KubeClient, namespace: str, name: str) -> str:
    """``http://<podIP>:8080`` of the Ready router pod (no kube-proxy here: pod IPs)."""

    async def ready_ip() -> str | None:
        pods = await kube.list_objects(
            "v1",
            "Pod",
            namespace,
            label_selector=(
                f"serving.nemotron.dev/deployment={name},app.kubernetes.io/component=router"
            ),
        )
        for pod in pods:
            status = pod.get("status") or {}
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            ):
                return str(status["podIP"])
        return None

    ip = await await_for(ready_ip, 90, interval=0.5, what="router pod Ready")
    return f"http://{ip}:8080"


async def wait_ready(kube: KubeClient, namespace: str, name: str, *, pool_ready: int) -> None:
    """The pool Deployment has ``pool_ready`` ready replicas (and the router is up)."""

    async def ready() -> bool:
        obj = await kube.get("apps/v1", "Deployment", namespace, f"{name}-on")
        status = (obj or {}).get("status") or {}
        return int(status.get("readyReplicas", 0) or 0) == pool_ready

    await await_for(ready, 120, interval=0.5, what=f"{name}-on has {pool_ready} ready")


async def _explain(timeline: Timeline) -> str:
    """The timeline's last samples and the policy's last reason, for a failure message."""
    obj = await timeline.kube.get("apps/v1", "Deployment", timeline.namespace, timeline.deployment)
    state = ((obj or {}).get("metadata") or {}).get("annotations", {}).get(STATE_ANNOTATION, "")
    lines = [str(s) for s in timeline.samples[-20:]]
    return "\n".join([*lines, f"sampling errors: {timeline.errors[-3:]}", f"policy: {state}"])


@contextmanager
def operator_for(namespace: str, log_path: Path, kubectl: Kubectl) -> Iterator[OperatorProcess]:
    """The operator watching only ``namespace``, holding its lease. The CRs are deleted while
    it still runs, so kopf takes its finalizer off and the namespace can go."""
    process = OperatorProcess(namespaces=[namespace], log_path=log_path).start()
    try:
        process.wait_until_serving()
        yield process
    finally:
        kubectl.run(
            "delete", "nemotrondeployments", "--all", "-n", namespace, "--timeout=60s",
            check=False,
        )  # fmt: skip
        process.stop()


async def run_burst(
    client: AsyncOpenAI,
    *,
    t0: float,
    workers: int = 10,
    burst_seconds: float = 20.0,
    short_tokens: int = 60,
    long_tokens: int = 500,
    longs: int = 2,
) -> list[StreamResult]:
    """``workers`` closed-loop clients streaming short answers for ``burst_seconds``; when they
    are done, ``longs`` long streams start on the now idle pool, so they are in flight while it
    scales back down. With the pool's replicas idle, the router's least-outstanding pick puts
    two long streams on two different pods, and a scale-down to one replica removes at least
    one pod that is still streaming: its engine must drain it."""
    stop_at = time.monotonic() + burst_seconds

    async def worker(index: int) -> list[StreamResult]:
        done: list[StreamResult] = []
        while time.monotonic() < stop_at:
            label = f"w{index}-{len(done)}"
            done.append(await stream_one(client, max_tokens=short_tokens, label=label, t0=t0))
        return done

    batches = await asyncio.gather(*(worker(i) for i in range(workers)))
    tail = await asyncio.gather(
        *(stream_one(client, max_tokens=long_tokens, label=f"long{j}", t0=t0) for j in range(longs))
    )
    return [result for batch in batches for result in batch] + list(tail)


@pytest.fixture
def operator(kubectl: Kubectl, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    with operator_for(namespace, tmp_path / "operator.log", kubectl) as process:
        yield process


@pytest.fixture
async def kclient(kube: Kube) -> AsyncIterator[KubeClient]:
    client = KubeClient.from_environment(
        field_manager="e2e-autoscaling", kubeconfig=str(kube.kubeconfig or KUBECONFIG)
    )
    try:
        yield client
    finally:
        await client.aclose()


async def _autoscaled_events(kclient: KubeClient, namespace: str, *needles: str) -> None:
    """Every ``needle`` is in the message of an ``Autoscaled`` Event (kopf posts them async)."""

    async def found() -> list[str] | None:
        events = await kclient.list_objects("v1", "Event", namespace)
        messages = [e.get("message", "") for e in events if e.get("reason") == "Autoscaled"]
        missing = [n for n in needles if not any(n in m for m in messages)]
        return None if missing else messages

    await await_for(found, 15, interval=0.5, what=f"Autoscaled events with {needles}")


async def _autoscaling_status(
    kclient: KubeClient, namespace: str, name: str, *, desired: int
) -> dict[str, Any]:
    """The CR's ``status.pools.on.autoscaling`` once it reports ``desired`` replicas."""

    async def reported() -> dict[str, Any] | None:
        body = await kclient.get(CR_API, "NemotronDeployment", namespace, name) or {}
        status = ((body.get("status") or {}).get("pools") or {}).get("on") or {}
        found: dict[str, Any] | None = status.get("autoscaling")
        if found and found.get("desiredReplicas") == found.get("currentReplicas") == desired:
            return found
        return None

    found = await await_for(reported, 15, interval=0.5, what=f"status: {desired} replicas")
    assert found is not None
    assert found["lastDecision"], found
    decided = datetime.fromisoformat(found["lastDecisionTime"])
    assert abs((datetime.now(UTC) - decided).total_seconds()) < 300, found
    assert "error" not in found, found
    return found


def _openai(router: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{router}/v1", api_key="unused", max_retries=0, timeout=120)


async def test_burst_scales_up_fast_and_back_to_min_without_a_failed_stream(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, kclient: KubeClient
) -> None:
    kubectl.apply(nemotron("burst", namespace, burst_spec(max_replicas=4)))
    await wait_ready(kclient, namespace, "burst", pool_ready=1)
    router = await router_url(kclient, namespace, "burst")
    async with httpx.AsyncClient() as http, _openai(router) as client:
        timeline = Timeline(
            kube=kclient, http=http, namespace=namespace, deployment="burst-on", router=router
        )
        sampler = asyncio.create_task(timeline.run())
        try:
            burst_start = time.monotonic() - timeline.start
            results = await run_burst(client, t0=timeline.start)
            burst_end = max(r.end for r in results if not r.label.startswith("long"))

            async def back_to_min() -> bool:
                last = timeline.samples[-1] if timeline.samples else None
                return bool(last and last.t > burst_end and last.desired == 1 and last.ready == 1)

            try:
                await await_for(back_to_min, 90, interval=0.5, what="pool back to 1 replica")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{await _explain(timeline)}") from None
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)

    failed = [r for r in results if r.error or r.finish_reason != "length"]
    assert not failed, failed
    shorts = [r for r in results if not r.label.startswith("long")]
    longs = [r for r in results if r.label.startswith("long")]
    assert len(shorts) >= 20
    assert len(longs) == 2

    scaled_up = timeline.first(lambda s: s.desired > 1, after=burst_start)
    assert scaled_up is not None, timeline.samples
    assert scaled_up.t - burst_start < 5.0, (burst_start, scaled_up)
    peak = max(s.desired for s in timeline.samples)
    assert 1 < peak <= 4
    assert max(s.ready for s in timeline.samples) > 1, "extra replicas never became ready"

    # The first scale-down came while long streams were still running, and they all finished.
    peak_at = timeline.first(lambda s: s.desired == peak)
    assert peak_at is not None
    down = timeline.first(lambda s: s.desired < peak, after=peak_at.t)
    assert down is not None
    in_flight = [r for r in longs if r.start < down.t < r.end]
    assert in_flight, (down, longs)
    # ... and at least one of them ran on a pod being removed: its engine drained it.
    drained = max(s.draining for s in timeline.samples)
    assert drained > 0, "no stream was in flight on a terminating pod"
    # Each scale is reported as an Event on the CR, with the policy's reason.
    await _autoscaled_events(kclient, namespace, "from 1 to", " to 1: scale down")
    # The CR's status carries the loop's latest decision for the pool.
    await _autoscaling_status(kclient, namespace, "burst", desired=1)
    print(
        f"\nburst: up to {peak} replicas {scaled_up.t - burst_start:.1f}s after the burst start, "
        f"first scale-down at {down.t:.1f}s with {len(in_flight)} long streams in flight "
        f"({drained:g} on terminating pods), "
        f"{len(results)} streams, none failed"
    )


async def test_wake_from_zero_holds_the_request_and_answers_it(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess, kclient: KubeClient
) -> None:
    startup_seconds = 5.0
    kubectl.apply(nemotron("wake", namespace, wake_spec(startup_seconds=startup_seconds)))
    router = await router_url(kclient, namespace, "wake")

    async def at_zero() -> bool:
        obj = await kclient.get("apps/v1", "Deployment", namespace, "wake-on")
        return obj is not None and int(obj["spec"].get("replicas", -1)) == 0

    # Created at replicas.min 0: no engine runs until a request arrives.
    await await_for(at_zero, 60, interval=0.5, what="wake-on created at 0 replicas")
    pods = await kclient.list_objects(
        "v1", "Pod", namespace, label_selector="serving.nemotron.dev/pool=on"
    )
    assert pods == []

    async with httpx.AsyncClient() as http, _openai(router) as client:
        timeline = Timeline(
            kube=kclient,
            http=http,
            namespace=namespace,
            deployment="wake-on",
            router=router,
            period=0.25,
        )
        sampler = asyncio.create_task(timeline.run())
        try:
            result = await stream_one(client, max_tokens=20, label="wake", t0=timeline.start)

            async def back_to_zero() -> bool:
                last = timeline.samples[-1] if timeline.samples else None
                return bool(last and last.t > result.end and last.desired == 0)

            await await_for(back_to_zero, 60, interval=0.5, what="pool back to 0 after idle")
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)

    assert result.error is None, result
    assert result.finish_reason == "length", result
    assert result.first_token is not None
    hold = result.first_token - result.start
    held = timeline.first(lambda s: s.queue >= 1 and s.desired <= 1)
    assert held is not None, "the router never held the request"
    assert held.t < result.first_token
    woke = timeline.first(lambda s: s.desired == 1)
    assert woke is not None
    assert woke.t < result.first_token
    # An engine that loads for startup_seconds cannot answer sooner.
    assert hold >= startup_seconds, hold
    await _autoscaled_events(kclient, namespace, "from 0 to 1: wake", "from 1 to 0: scale to zero")
    await _autoscaling_status(kclient, namespace, "wake", desired=0)
    print(
        f"\nwake from zero: replicas 0->1 {woke.t - result.start:.1f}s after the request, "
        f"first token after {hold:.1f}s held (emulated startup {startup_seconds:g}s)"
    )

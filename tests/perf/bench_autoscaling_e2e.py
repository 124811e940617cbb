"""Queue-depth autoscaling end to end on the local cluster: the burst and wake-from-zero
scenarios of tests/e2e/test_autoscaling_e2e.py (same specs, same load), with the timeline
printed -- every ~1 s: time, the router's queue depth and in-flight requests for the pool,
the pool Deployment's desired/ready replicas, engine pods terminating and the streams they
still drain -- and the hold time of a request that wakes a pool from zero.

Needs the local cluster (``nemotron-operator devcluster up``); runs the operator as a
subprocess (tests/cluster/operator_harness.py) on a throw-away namespace per scenario.

    .venv/bin/python -m tests.perf.bench_autoscaling_e2e [--startup 5] [--workers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
from openai import AsyncOpenAI

from nemotron_operator.devcluster.cluster import Cluster
from nemotron_operator.kube.client import KubeClient
from tests.cluster.operator_harness import KUBECONFIG, Kubectl, find_kubectl, nemotron
from tests.e2e.test_autoscaling_e2e import (
    Sample,
    StreamResult,
    Timeline,
    burst_spec,
    operator_for,
    router_url,
    run_burst,
    stream_one,
    wait_ready,
    wake_spec,
)
from tests.support.waiting import await_for

__all__ = ["main"]


def _key(sample: Sample) -> tuple[float, ...]:
    return (
        sample.queue,
        sample.inflight,
        sample.running,
        sample.waiting,
        sample.desired,
        sample.ready,
        sample.terminating,
        sample.draining,
    )


def _row(sample: Sample, results: list[StreamResult]) -> str:
    done = sum(1 for r in results if r.end <= sample.t)
    failed = sum(1 for r in results if r.end <= sample.t and r.error)
    return (
        f"| {sample.t:5.1f} | {sample.queue:g} | {sample.inflight:g} | {sample.running:g} | "
        f"{sample.waiting:g} | {sample.desired} | {sample.ready} | {sample.terminating} | "
        f"{sample.draining:g} | {done} | {failed} |"
    )


def _compress(samples: list[Sample]) -> list[Sample]:
    """Rows where something other than time changed (first and last kept)."""
    kept: list[Sample] = []
    for sample in samples:
        if not kept or _key(sample) != _key(kept[-1]) or sample is samples[-1]:
            kept.append(sample)
    return kept


async def burst(kube: KubeClient, kubectl: Kubectl, *, workers: int, log_dir: Path) -> None:
    with (
        kubectl.namespaces(1, prefix="bench-as") as (namespace,),
        operator_for(namespace, log_dir / "operator-burst.log", kubectl),
    ):
        kubectl.apply(nemotron("burst", namespace, burst_spec(max_replicas=4)))
        await wait_ready(kube, namespace, "burst", pool_ready=1)
        router = await router_url(kube, namespace, "burst")
        async with (
            httpx.AsyncClient() as http,
            AsyncOpenAI(
                base_url=f"{router}/v1", api_key="unused", max_retries=0, timeout=120
            ) as client,
        ):
            timeline = Timeline(
                kube=kube,
                http=http,
                namespace=namespace,
                deployment="burst-on",
                router=router,
                period=1.0,
            )
            sampler = asyncio.create_task(timeline.run())
            try:
                start = time.monotonic() - timeline.start
                results = await run_burst(client, t0=timeline.start, workers=workers)
                shorts_end = max(r.end for r in results if not r.label.startswith("long"))

                async def settled() -> bool:
                    last = timeline.samples[-1] if timeline.samples else None
                    return bool(last and last.t > shorts_end + 3 and last.desired == 1)

                await await_for(settled, 120, interval=0.5, what="back to 1 replica")
                await await_for(
                    lambda: _ready_one(timeline), 60, interval=0.5, what="1 ready, 0 stopping"
                )
            finally:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
    samples = timeline.samples
    up = next((s for s in samples if s.desired > 1 and s.t >= start), None)
    peak = max(s.desired for s in samples)
    full = next((s for s in samples if s.ready == peak), None)
    peak_t = next(s.t for s in samples if s.desired == peak)
    down = next((s for s in samples if s.t > peak_t and s.desired < peak), None)
    at_min = next((s for s in samples if s.t > peak_t and s.desired == 1), None)
    longs = [r for r in results if r.label.startswith("long")]
    print(f"## burst: {workers} closed-loop streams of 60 tokens for 20 s, then 2 x 500 tokens")
    print(f"burst start t={start:.1f}s, short streams end t={shorts_end:.1f}s")
    print(f"desired > 1 at t={up.t if up else float('nan'):.1f}s; peak {peak} desired")
    print(f"{peak} ready at t={full.t if full else float('nan'):.1f}s")
    print(f"first scale-down at t={down.t if down else float('nan'):.1f}s")
    print(f"back to 1 desired at t={at_min.t if at_min else float('nan'):.1f}s")
    print(
        f"long streams: {', '.join(f'{r.start:.1f}-{r.end:.1f}s' for r in longs)}; "
        f"max streams on terminating pods: {max(s.draining for s in samples):g}"
    )
    errors = [r for r in results if r.error]
    print(f"streams: {len(results)}, failed: {len(errors)} {errors[:3]}")
    print(
        "\n| t (s) | router queue | router in-flight | engines running | engines waiting "
        "| desired | ready | terminating | draining | streams done | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for sample in _compress(samples):
        print(_row(sample, results))


async def _ready_one(timeline: Timeline) -> bool:
    last = timeline.samples[-1] if timeline.samples else None
    return bool(last and last.ready == 1 and last.terminating == 0)


async def wake(kube: KubeClient, kubectl: Kubectl, *, startup: float, log_dir: Path) -> None:
    with (
        kubectl.namespaces(1, prefix="bench-wake") as (namespace,),
        operator_for(namespace, log_dir / "operator-wake.log", kubectl),
    ):
        kubectl.apply(nemotron("wake", namespace, wake_spec(startup_seconds=startup)))
        router = await router_url(kube, namespace, "wake")

        async def at_zero() -> bool:
            obj = await kube.get("apps/v1", "Deployment", namespace, "wake-on")
            return obj is not None and obj["spec"].get("replicas") == 0

        await await_for(at_zero, 60, interval=0.5, what="created at 0")
        async with (
            httpx.AsyncClient() as http,
            AsyncOpenAI(
                base_url=f"{router}/v1", api_key="unused", max_retries=0, timeout=120
            ) as client,
        ):
            timeline = Timeline(
                kube=kube,
                http=http,
                namespace=namespace,
                deployment="wake-on",
                router=router,
                period=0.25,
            )
            sampler = asyncio.create_task(timeline.run())
            try:
                result = await stream_one(client, max_tokens=20, label="wake", t0=timeline.start)
            finally:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
    woke = next((s for s in timeline.samples if s.desired >= 1), None)
    ready = next((s for s in timeline.samples if s.ready >= 1), None)
    first = result.first_token if result.first_token is not None else float("nan")
    print(f"\n## wake from zero, emulated startup {startup:g} s")
    print(f"request sent t={result.start:.2f}s; error: {result.error}")
    print(f"replicas 0->1 at t={woke.t if woke else float('nan'):.2f}s")
    print(f"engine Ready at t={ready.t if ready else float('nan'):.2f}s")
    print(f"first token at t={first:.2f}s: held {first - result.start:.2f}s")


async def _main(args: argparse.Namespace) -> int:
    if not Cluster().is_up():
        print("the local cluster is not up: nemotron-operator devcluster up", file=sys.stderr)
        return 2
    binary = find_kubectl()
    if binary is None:
        print("kubectl not found", file=sys.stderr)
        return 2
    kubectl = Kubectl(binary)
    kubectl.install_crd()
    kube = KubeClient.from_environment(
        field_manager="bench-autoscaling", kubeconfig=str(KUBECONFIG)
    )
    log_dir = Path(tempfile.mkdtemp(prefix="bench-autoscaling-"))
    try:
        if not args.skip_burst:
            await burst(kube, kubectl, workers=args.workers, log_dir=log_dir)
        await wake(kube, kubectl, startup=args.startup, log_dir=log_dir)
    finally:
        await kube.aclose()
    print(f"\noperator logs: {log_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startup", type=float, default=5.0, help="emulated engine startup (s)")
    parser.add_argument("--workers", type=int, default=10, help="concurrent burst streams")
    parser.add_argument("--skip-burst", action="store_true", help="only the wake from zero")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

"""``nemotron-operator run``: the operator process. Reads settings from flags and environment
variables (``controller.settings``), serves a liveness endpoint and Prometheus metrics, waits
for the leader Lease (``controller.leader``), then runs kopf with the handlers of
``controller.handlers`` until stopped (SIGINT/SIGTERM) or the Lease is lost (exit 1, so the
Deployment restarts it as a candidate)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal

import httpx
import kopf
from aiohttp import web
from prometheus_client import start_http_server

from nemotron_operator.controller.handlers import Runtime, build_registry
from nemotron_operator.controller.leader import LeaderElector
from nemotron_operator.controller.metrics import API_REQUESTS
from nemotron_operator.controller.naming import FIELD_MANAGER
from nemotron_operator.controller.refresher import refresh_not_ready_forever
from nemotron_operator.controller.settings import DEFAULT_ROUTER_IMAGE, OperatorSettings
from nemotron_operator.engine.assets import engine_files
from nemotron_operator.kube.client import KubeClient

__all__ = ["register", "run_operator"]

log = logging.getLogger(__name__)


async def _serve_health(host: str, port: int, state: dict[str, str]) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(state)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def run_operator(settings: OperatorSettings, *, kubeconfig: str | None = None) -> int:
    """Run until stopped; the exit code of the process."""
    if kubeconfig:
        # kopf's own login (for its watches) reads the same file.
        os.environ["KUBECONFIG"] = kubeconfig
    start_http_server(settings.metrics_port, addr=settings.bind_host)
    health_state = {"state": "starting"}
    health = await _serve_health(settings.bind_host, settings.health_port, health_state)
    client = KubeClient.from_environment(
        field_manager=FIELD_MANAGER,
        kubeconfig=kubeconfig,
        on_request=lambda method: API_REQUESTS.labels(method=method).inc(),
    )
    http = httpx.AsyncClient(timeout=5.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    elector_task: asyncio.Task[None] | None = None
    exit_code = 0
    try:
        if settings.leader_election:
            elector = LeaderElector(
                client,
                name=settings.lease_name,
                namespace=settings.lease_namespace,
                identity=settings.identity,
                duration=settings.lease_duration_seconds,
            )
            elector_task = asyncio.create_task(elector.run())
            health_state["state"] = "candidate"
            waiters = [
                asyncio.create_task(elector.is_leader.wait()),
                asyncio.create_task(stop.wait()),
            ]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if stop.is_set():
                return 0
            lost = elector.lost
        else:
            lost = asyncio.Event()
        health_state["state"] = "leader"
        runtime = Runtime(client=client, http=http, settings=settings, engine_files=engine_files())
        kopf_stop = asyncio.Event()

        async def relay() -> None:
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            kopf_stop.set()

        relay_task = asyncio.create_task(relay())
        refresher_task = asyncio.create_task(refresh_not_ready_forever(runtime))
        try:
            await kopf.operator(
                registry=build_registry(runtime),
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
                standalone=True,
                stop_flag=kopf_stop,
            )
        finally:
            for task in (relay_task, refresher_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if lost.is_set():
            log.error("lost the leader Lease: exiting so that a fresh candidate starts")
            exit_code = 1
    finally:
        if elector_task is not None:
            elector_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await elector_task
        await http.aclose()
        await client.aclose()
        await health.cleanup()
    return exit_code


def _settings(args: argparse.Namespace) -> OperatorSettings:
    base = OperatorSettings()
    return OperatorSettings(
        router_image=args.router_image,
        router_image_pull_policy=args.router_image_pull_policy,
        cluster_domain=args.cluster_domain,
        namespaces=tuple(args.namespace or ()),
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace or base.lease_namespace,
        identity=args.identity or base.identity,
        bind_host=args.bind_host or base.bind_host,
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        leader_election=not args.no_leader_election,
    )


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per apiserver request is too much even at INFO.
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    return asyncio.run(run_operator(_settings(args), kubeconfig=args.kubeconfig))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    env = os.environ.get
    parser = subparsers.add_parser("run", help="run the operator (kopf)")
    parser.add_argument(
        "--kubeconfig", default=env("KUBECONFIG"), help="default: in-cluster, else $KUBECONFIG"
    )
    parser.add_argument(
        "--router-image",
        default=env("NEMOTRON_ROUTER_IMAGE", DEFAULT_ROUTER_IMAGE),
        help="image of the router pods ($NEMOTRON_ROUTER_IMAGE; default %(default)s)",
    )
    parser.add_argument(
        "--router-image-pull-policy",
        default=env("NEMOTRON_ROUTER_IMAGE_PULL_POLICY", "IfNotPresent"),
        choices=["Always", "IfNotPresent", "Never"],
    )
    parser.add_argument("--cluster-domain", default=env("NEMOTRON_CLUSTER_DOMAIN", "cluster.local"))
    parser.add_argument(
        "--namespace",
        action="append",
        help="watch only this namespace (repeatable; default: the whole cluster)",
    )
    parser.add_argument("--lease-name", default=env("NEMOTRON_LEASE_NAME", "nemotron-operator"))
    parser.add_argument(
        "--lease-namespace", default=env("POD_NAMESPACE"), help="default: $POD_NAMESPACE or default"
    )
    parser.add_argument(
        "--identity", default=None, help="leader-election identity (default: $POD_NAME or host-pid)"
    )
    parser.add_argument(
        "--no-leader-election", action="store_true", help="act without holding the Lease"
    )
    parser.add_argument(
        "--bind-host",
        default=None,
        help="address of health and metrics (default: $POD_IP or 0.0.0.0)",
    )
    parser.add_argument("--health-port", type=int, default=int(env("NEMOTRON_HEALTH_PORT", "8081")))
    parser.add_argument(
        "--metrics-port", type=int, default=int(env("NEMOTRON_METRICS_PORT", "9090"))
    )
    parser.add_argument("--verbose", action="store_true")
    parser.set_defaults(func=_run)

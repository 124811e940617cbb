"""Benchmark: reconcile many NemotronDeployments on the local cluster.

Prints: time until every CR is reconciled (status.observedGeneration current, children made)
and, with ``--wait ready``, until every CR is Ready; the operator's peak RSS; the requests the
reconciler sent to the apiserver per CR (the operator's ``nemotron_operator_api_requests_total``;
kopf's own watch and annotation patches are not in it); and the operator's CPU use while idle
with every CR in place.

The pools are created with ``replicas: {min: 0, max: 0}`` so that no engine pod starts, and
the router pods get a node selector no node matches, so that they stay Pending: this measures
the operator, not the pod runner (200 router processes would not fit the 2-core machine).
Such CRs never turn Ready, so the default is ``--wait reconciled``. With ``--run-routers`` the
router pods run (one process each) and ``--wait ready`` measures the time to Ready.

Run (the local cluster must be up):
    .venv/bin/python -m tests.perf.bench_reconcile --count 200
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cluster.operator_harness import (
    KUBECONFIG,
    Kubectl,
    OperatorProcess,
    find_kubectl,
    nemotron,
)

SPEC: dict[str, Any] = {
    "model": {"preset": "nano-4b-v1.1"},
    "pools": {
        "reasoningOn": {"replicas": {"min": 0, "max": 0}},
        "reasoningOff": {"replicas": {"min": 0, "max": 0}},
    },
}


def _proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])  # kB
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _states(kubectl: Kubectl, namespaces: list[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for namespace in namespaces:
        items += kubectl.list("nemotrondeployments", namespace)
    return items


def _reconciled(body: dict[str, Any]) -> bool:
    status = body.get("status") or {}
    return bool(
        status.get("observedGeneration") == body["metadata"].get("generation")
        and status.get("endpoint")
    )


def _ready(body: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (body.get("status") or {}).get("conditions") or []
    )


def _spec(run_routers: bool) -> dict[str, Any]:
    if run_routers:
        return SPEC
    return {**SPEC, "router": {"nodeSelector": {"serving.nemotron.dev/bench": "no-such-node"}}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--namespaces", type=int, default=4)
    parser.add_argument("--wait", choices=["reconciled", "ready"], default="reconciled")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--router-image", default=None)
    parser.add_argument("--run-routers", action="store_true", help="let router pods run")
    args = parser.parse_args()
    binary = find_kubectl()
    if not KUBECONFIG.exists() or binary is None:
        raise SystemExit("the local cluster is not up (nemotron-operator devcluster up)")
    kubectl = Kubectl(binary)
    kubectl.install_crd()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    with kubectl.namespaces(args.namespaces, prefix="bench") as namespaces:
        operator = OperatorProcess(
            namespaces=namespaces, log_path=log_dir / "operator.log", router_image=args.router_image
        ).start()
        try:
            operator.wait_until_serving()
            assert operator.process is not None
            pid = operator.process.pid
            manifests = [
                nemotron(f"bench-{i:04d}", namespaces[i % len(namespaces)], _spec(args.run_routers))
                for i in range(args.count)
            ]
            started = time.monotonic()
            kubectl.run(
                "apply",
                "-f",
                "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
                timeout=600,
            )
            applied = time.monotonic() - started
            done_reconciled: float | None = None
            done_ready: float | None = None
            peak_rss = 0
            while time.monotonic() - started < args.timeout:
                items = _states(kubectl, namespaces)
                peak_rss = max(peak_rss, _proc_status(pid, "VmHWM"))
                if (
                    done_reconciled is None
                    and len(items) == args.count
                    and all(map(_reconciled, items))
                ):
                    done_reconciled = time.monotonic() - started
                if args.wait == "ready" and len(items) == args.count and all(map(_ready, items)):
                    done_ready = time.monotonic() - started
                if done_reconciled is not None and (
                    args.wait == "reconciled" or done_ready is not None
                ):
                    break
                time.sleep(1)
            # Let the operator work off its backlog of child events before measuring idle.
            settle_start = time.monotonic()
            last = -1.0
            while time.monotonic() - settle_start < 300:
                now_requests = operator.metric("nemotron_operator_api_requests_total")
                lease_only = now_requests - last <= 4  # a Lease renewal or two per 10 s
                if last >= 0 and lease_only:
                    break
                last = now_requests
                time.sleep(10)
            settled = time.monotonic() - started
            requests = operator.metric("nemotron_operator_api_requests_total")
            cpu_before = _cpu_seconds(pid)
            time.sleep(args.idle_seconds)
            idle_cpu = (_cpu_seconds(pid) - cpu_before) / args.idle_seconds
            peak_rss = max(peak_rss, _proc_status(pid, "VmHWM"))
            print(
                f"CRs: {args.count} in {len(namespaces)} namespaces (kubectl apply took {applied:.1f} s)"
            )
            print(
                f"all reconciled after: {done_reconciled if done_reconciled is None else round(done_reconciled, 1)} s"
            )
            if args.wait == "ready":
                print(
                    f"all Ready after: {done_ready if done_ready is None else round(done_ready, 1)} s"
                )
            print(f"operator settled (no requests but the Lease's) after: {settled:.1f} s")
            print(f"operator peak RSS: {peak_rss / 1024:.1f} MiB")
            print(
                f"reconciler API requests: {requests:.0f} total, {requests / args.count:.1f} per CR"
            )
            print(
                f"idle CPU over {args.idle_seconds:.0f} s after settling: "
                f"{idle_cpu * 100:.1f} % of one core"
            )
            print(f"operator log: {log_dir / 'operator.log'}")
        finally:
            operator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

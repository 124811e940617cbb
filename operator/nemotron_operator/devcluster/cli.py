"""``nemotron-operator devcluster ...``: the local cluster's command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nemotron_operator.devcluster.binaries import ensure_binaries, find_binary
from nemotron_operator.devcluster.cluster import Cluster
from nemotron_operator.devcluster.manifests import ClusterOptions
from nemotron_operator.devcluster.versions import PROGRAMS

__all__ = ["register"]


def _cluster(args: argparse.Namespace) -> Cluster:
    return Cluster(Path(args.state_dir) if args.state_dir else None)


def _up(args: argparse.Namespace) -> int:
    options = ClusterOptions(
        nodes=args.nodes, gpus_per_node=args.gpus_per_node, gpu_product=args.gpu_product
    )
    cluster = _cluster(args)
    cluster.up(options)
    print(f"export KUBECONFIG={cluster.kubeconfig_path}")
    return 0


def _down(args: argparse.Namespace) -> int:
    _cluster(args).down()
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    procs = cluster.process_status()
    up = all(procs.values()) and cluster.api_ready()
    report = {
        "up": up,
        "state_dir": str(cluster.state),
        "server": cluster.server,
        "processes": procs,
        "ready_nodes": cluster.ready_nodes() if cluster.api_ready() else [],
    }
    print(json.dumps(report, indent=2))
    return 0 if up else 1


def _env(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    print(f"export KUBECONFIG={cluster.kubeconfig_path}")
    for name in ("kubectl", "helm"):
        path = find_binary(name)
        if path is not None:
            print(f"export PATH={path.parent}:$PATH")
    return 0


def _build(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.programs) - set(PROGRAMS))
    if unknown:
        print(f"unknown programs {unknown}; known: {sorted(PROGRAMS)}", file=sys.stderr)
        return 2
    began = time.monotonic()
    paths = ensure_binaries(args.programs or None)
    for name, path in sorted(paths.items()):
        print(f"{name}\t{path}")
    print(f"binaries ready in {time.monotonic() - began:.1f}s", file=sys.stderr)
    return 0


def _bin(args: argparse.Namespace) -> int:
    path = find_binary(args.program) or ensure_binaries([args.program])[args.program]
    print(path)
    return 0


def _podrunner(args: argparse.Namespace) -> int:
    from nemotron_operator.devcluster.podrunner import run_forever

    return run_forever(Path(args.state_dir).resolve())


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("devcluster", help="start, stop and inspect the local cluster")
    parser.add_argument(
        "--state-dir", help="state directory (default: .devcluster/ at the repo root)"
    )
    sub = parser.add_subparsers(dest="devcluster_command", metavar="ACTION", required=True)
    up = sub.add_parser(
        "up", help="build/find binaries, start the control plane, kwok and the pod runner"
    )
    up.add_argument("--nodes", type=int, default=4, help="simulated GPU nodes (default 4)")
    up.add_argument(
        "--gpus-per-node", type=int, default=8, help="nvidia.com/gpu per node (default 8)"
    )
    up.add_argument(
        "--gpu-product", default="NVIDIA-H100-80GB-HBM3", help="nvidia.com/gpu.product label"
    )
    up.set_defaults(func=_up)
    sub.add_parser(
        "down", help="stop every process started by up and remove the state"
    ).set_defaults(func=_down)
    sub.add_parser("status", help="print what runs (exit 1 when not up)").set_defaults(func=_status)
    sub.add_parser("env", help="print export lines for KUBECONFIG and PATH").set_defaults(func=_env)
    build = sub.add_parser(
        "build", help="build the pinned binaries into the cache (no-op when warm)"
    )
    build.add_argument(
        "programs", nargs="*", metavar="PROGRAM", help=f"some of: {', '.join(PROGRAMS)}"
    )
    build.set_defaults(func=_build)
    binp = sub.add_parser("bin", help="print the path of one pinned binary")
    binp.add_argument("program", choices=sorted(PROGRAMS))
    binp.set_defaults(func=_bin)
    runner = sub.add_parser("podrunner", help=argparse.SUPPRESS)
    runner.set_defaults(func=_podrunner)

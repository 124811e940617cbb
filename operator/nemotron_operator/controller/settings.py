"""Settings of the operator process (``nemotron-operator run``): images, addresses, leader
election. A small frozen dataclass built by ``controller.cli`` from flags and environment
variables, and passed to the pure builders (``controller.desired``) and the handlers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from nemotron_operator import __version__

__all__ = ["DEFAULT_ROUTER_IMAGE", "OperatorSettings"]

DEFAULT_ROUTER_IMAGE = f"ghcr.io/nemotron-operator/nemotron-operator:{__version__}"


@dataclass(frozen=True)
class OperatorSettings:
    """What one operator process is configured with."""

    router_image: str = DEFAULT_ROUTER_IMAGE
    router_image_pull_policy: str = "IfNotPresent"
    cluster_domain: str = "cluster.local"
    # Namespaces to watch; empty: the whole cluster.
    namespaces: tuple[str, ...] = ()
    # Leader election (a coordination.k8s.io Lease): only the holder reconciles.
    lease_name: str = "nemotron-operator"
    lease_namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "default"))
    lease_duration_seconds: int = 15
    identity: str = field(
        default_factory=lambda: os.environ.get("POD_NAME", f"{os.uname().nodename}-{os.getpid()}")
    )
    # Addresses of the liveness endpoint and the Prometheus metrics.
    bind_host: str = field(default_factory=lambda: os.environ.get("POD_IP", "0.0.0.0"))
    health_port: int = 8081
    metrics_port: int = 9090
    leader_election: bool = True

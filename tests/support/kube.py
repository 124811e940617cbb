"""Fixtures for tests that need the real local control plane (cluster and e2e tiers).

``kube`` (session) starts the local cluster when it is not already running and stops it at the
end (``NEMOTRON_KEEP_CLUSTER=1`` keeps a cluster the session started); ``namespace`` gives each
test its own namespace and deletes it afterwards; ``kubectl`` (module) is the operator tests'
``Kubectl`` (tests/cluster/operator_harness.py) on that cluster, with the NemotronDeployment CRD
installed unless the module overrides ``needs_crd``. Loaded as a plugin by tests/conftest.py, so
the cluster starts only when a test asks for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nemotron_operator.devcluster.binaries import ensure_binaries
from nemotron_operator.devcluster.cluster import Cluster
from tests.cluster.operator_harness import Kubectl

__all__ = ["Kube", "kube", "kubectl", "namespace", "needs_crd"]


@dataclass(frozen=True)
class Kube:
    """The running cluster: its kubeconfig, kubectl and helpers to call it."""

    cluster: Cluster
    kubectl_path: Path

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig_path

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ) | {"KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, input=input, timeout=60,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply(
        self, manifest: dict[str, Any] | list[dict[str, Any]], namespace: str | None = None
    ) -> None:
        docs = manifest if isinstance(manifest, list) else [manifest]
        ns = ["-n", namespace] if namespace else []
        self.kubectl(
            "apply",
            *ns,
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
        )


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    cluster = Cluster()
    started = not cluster.is_up()
    if started:
        cluster.up()
    kubectl = ensure_binaries(["kubectl"])["kubectl"]
    yield Kube(cluster=cluster, kubectl_path=kubectl)
    if started and os.environ.get("NEMOTRON_KEEP_CLUSTER") != "1":
        cluster.down()


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def needs_crd() -> bool:
    """Whether ``kubectl`` installs the NemotronDeployment CRD: a module whose tests make no
    NemotronDeployment overrides this fixture to return ``False``."""
    return True


@pytest.fixture(scope="module")
def kubectl(kube: Kube, needs_crd: bool) -> Kubectl:
    """The same kubectl binary and kubeconfig as ``kube``, so a module talks to the cluster the
    session started. Module scope, as the per-module copies it replaces had: the CRD is
    re-applied (idempotently, from crds/) for each module, so what another module did to it in
    between (the chart test installs it through helm) never leaks into the next."""
    client = Kubectl(str(kube.kubectl_path), kube.kubeconfig)
    if needs_crd:
        client.install_crd()
    return client

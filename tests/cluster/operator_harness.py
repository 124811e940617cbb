"""Helpers for the operator's cluster tests (tests/cluster/test_operator_*.py) and the
reconcile benchmark (tests/perf/bench_reconcile.py): kubectl against the local cluster, the
CRD installed from crds/, throw-away namespaces, and the operator run as a subprocess
(``nemotron-operator run``) watching only the namespaces a test gives it, so tests of other
parts and other engineers' operators never see each other's CRs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_for

__all__ = [
    "CRD_FILE",
    "KUBECONFIG",
    "REPO",
    "Kubectl",
    "OperatorProcess",
    "find_kubectl",
    "free_port",
    "nemotron",
]

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = Path(os.environ.get("NEMOTRON_KUBECONFIG", REPO / ".devcluster" / "kubeconfig"))
CRD_FILE = REPO / "crds" / "nemotron-deployment.yaml"
OPERATOR = [sys.executable, "-m", "nemotron_operator"]


def find_kubectl() -> str | None:
    from_env = os.environ.get("KUBECTL")
    if from_env:
        return from_env
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cached = sorted((cache / "nemotron-operator" / "bin").glob("*/kubectl"), reverse=True)
    if cached:
        return str(cached[0])
    return shutil.which("kubectl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nemotron(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.nemotron.dev/v1alpha1",
        "kind": "NemotronDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path = KUBECONFIG

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def apply(self, obj: dict[str, Any], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", stdin=json.dumps(obj), check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        result = self.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    def list(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = json.loads(self.run(*args).stdout)["items"]
        return items

    def install_crd(self) -> None:
        self.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
        self.run(
            "wait",
            "--for=condition=Established",
            "crd/nemotrondeployments.serving.nemotron.dev",
            "--timeout=60s",
        )

    @contextmanager
    def namespaces(self, count: int, prefix: str = "op") -> Iterator[list[str]]:
        names = [f"{prefix}-{uuid.uuid4().hex[:8]}" for _ in range(count)]
        for name in names:
            self.run("create", "namespace", name)
        try:
            yield names
        finally:
            for name in names:
                self.run("delete", "namespace", name, "--wait=false", check=False)


@dataclass
class OperatorProcess:
    """``nemotron-operator run`` watching ``namespaces``; its log goes to ``log_path``."""

    namespaces: list[str]
    log_path: Path
    lease_namespace: str | None = None
    router_image: str | None = None
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    identity: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:6]}")
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        args = [
            *OPERATOR,
            "run",
            "--kubeconfig",
            str(KUBECONFIG),
            "--bind-host",
            "127.0.0.1",
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            "--identity",
            self.identity,
            "--lease-namespace",
            self.lease_namespace or self.namespaces[0],
        ]
        if self.router_image:
            args += ["--router-image", self.router_image]
        for namespace in self.namespaces:
            args += ["--namespace", namespace]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: the hard way, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def metrics(self) -> str:
        import httpx

        response = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5)
        response.raise_for_status()
        return response.text

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, label_text = head.partition("{")
            if metric != name:
                continue
            if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                total += float(value)
        return total

    def wait_until_serving(self, timeout: float = 60) -> None:
        import httpx

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"operator exited: {self.log_path.read_text()[-3000:]}")
            response = httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2)
            return bool(response.json().get("state") == "leader")

        wait_for(up, timeout, interval=0.25, what="operator holds the lease")

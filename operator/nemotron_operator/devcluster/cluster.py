"""``devcluster up|down|status|env``: the local control plane on loopback.

``up`` builds (or finds) the pinned binaries, makes the PKI, starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, registers the simulated GPU nodes, starts the
pod runner, and waits until the API is ready, every node is Ready and the ``default``
ServiceAccount exists. Running it again while everything runs changes nothing. ``down`` stops
every process it recorded, by pid, and removes the state directory.

The apiserver runs with ``--endpoint-reconciler-type=none`` and the controller-manager without
the endpoint and EndpointSlice controllers: pods have loopback addresses, which the apiserver
refuses in Endpoints/EndpointSlices. Nothing in the project depends on them.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nemotron_operator.devcluster import processes
from nemotron_operator.devcluster.binaries import ensure_binaries
from nemotron_operator.devcluster.manifests import (
    ClusterOptions,
    gpu_nodes,
    kubeconfig,
    kwok_config,
)
from nemotron_operator.devcluster.pki import Pki, make_pki
from nemotron_operator.devcluster.provisioner import storage_class

__all__ = ["Cluster", "Ports", "default_state_dir"]

Progress = Callable[[str], None]

# Stop order: the pod runner first (it drains pods), etcd last.
STOP_ORDER = (
    "podrunner",
    "kwok",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)


@dataclass(frozen=True)
class Ports:
    """Loopback ports; unusual numbers so a developer's own cluster is not disturbed."""

    etcd_client: int = 23790
    etcd_peer: int = 23800
    apiserver: int = 26443
    controller_manager: int = 26257
    scheduler: int = 26259
    kwok: int = 26280


def repo_root(start: Path | None = None) -> Path:
    """The nearest directory upwards holding this project's pyproject.toml (else the cwd)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and 'name = "nemotron-operator"' in pyproject.read_text():
            return candidate
    return here


def default_state_dir() -> Path:
    env = os.environ.get("NEMOTRON_DEVCLUSTER_DIR")
    return Path(env).resolve() if env else repo_root() / ".devcluster"


class Cluster:
    """The local cluster whose state lives in ``state``."""

    def __init__(self, state: Path | None = None, *, ports: Ports | None = None) -> None:
        self.state = (state or default_state_dir()).resolve()
        self.ports = ports or Ports()
        self.pki = Pki(self.state / "pki")

    @property
    def kubeconfig_path(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    # -- queries ---------------------------------------------------------------------------

    def tls_context(self) -> ssl.SSLContext:
        """TLS settings of an admin client: the cluster CA and the admin certificate."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_crt))
        ctx.load_cert_chain(str(self.pki.admin_crt), str(self.pki.admin_key))
        return ctx

    def api_get(self, path: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
        req = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(req, context=self.tls_context(), timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def api_ready(self) -> bool:
        if not self.pki.admin_crt.exists():
            return False
        try:
            status, _ = self.api_get("/readyz")
        except (OSError, ssl.SSLError):
            return False
        return status == 200

    def ready_nodes(self) -> list[str]:
        status, body = self.api_get("/api/v1/nodes")
        if status != 200:
            return []
        ready = []
        for node in json.loads(body)["items"]:
            conditions = node.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                ready.append(node["metadata"]["name"])
        return ready

    def _node_names(self) -> list[str]:
        status, body = self.api_get("/api/v1/nodes")
        return [n["metadata"]["name"] for n in json.loads(body)["items"]] if status == 200 else []

    def process_status(self) -> dict[str, int | None]:
        return {name: processes.running_pid(self.state, name) for name in reversed(STOP_ORDER)}

    def is_up(self) -> bool:
        return all(self.process_status().values()) and self.api_ready()

    # -- lifecycle -------------------------------------------------------------------------

    def up(
        self, options: ClusterOptions | None = None, *, progress: Progress | None = None
    ) -> float:
        """Start everything not running; return seconds until API ready and nodes Ready."""
        say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
        options = options or ClusterOptions()
        bins = ensure_binaries(progress=say)
        began = time.monotonic()
        if self.is_up():
            say(f"devcluster already up ({self.server}); nothing to do")
            return 0.0
        self.state.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki.root)
        self.kubeconfig_path.write_text(
            kubeconfig(
                server=self.server,
                ca=str(self.pki.ca_crt),
                cert=str(self.pki.admin_crt),
                key=str(self.pki.admin_key),
            )
        )
        self._ensure_process("etcd", self._etcd_argv(bins["etcd"]))
        self._wait(lambda: self._etcd_healthy(), 30, "etcd healthy")
        self._ensure_process("kube-apiserver", self._apiserver_argv(bins["kube-apiserver"]))
        self._wait(self.api_ready, 60, "kube-apiserver /readyz")
        say(f"API ready after {time.monotonic() - began:.1f}s")
        self._ensure_process(
            "kube-controller-manager",
            self._controller_manager_argv(bins["kube-controller-manager"]),
        )
        self._ensure_process("kube-scheduler", self._scheduler_argv(bins["kube-scheduler"]))
        self._apply_nodes(bins["kubectl"], options)
        self._apply_storage_class(bins["kubectl"])
        (self.state / "kwok.yaml").write_text(
            kwok_config(server_address=f"127.0.0.1:{self.ports.kwok}")
        )
        self._ensure_process(
            "kwok",
            [
                str(bins["kwok"]),
                f"--kubeconfig={self.kubeconfig_path}",
                f"--config={self.state / 'kwok.yaml'}",
                "--manage-all-nodes=true",
                f"--server-address=127.0.0.1:{self.ports.kwok}",
            ],
        )
        # The pod runner serves the kubelet API on the nodes' addresses: register nodes first.
        self._wait(lambda: len(self._node_names()) >= options.nodes, 30, "nodes registered")
        self._ensure_process(
            "podrunner",
            [
                sys.executable,
                "-m",
                "nemotron_operator",
                "devcluster",
                "--state-dir",
                str(self.state),
                "podrunner",
            ],
            env=dict(os.environ) | {"KUBECONFIG": str(self.kubeconfig_path)},
        )
        self._wait(
            lambda: len(self.ready_nodes()) >= options.nodes, 60, f"{options.nodes} nodes Ready"
        )
        self._wait(
            lambda: self.api_get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            60,
            "the default ServiceAccount",
        )
        elapsed = time.monotonic() - began
        say(
            f"devcluster up in {elapsed:.1f}s: {len(self.ready_nodes())} GPU nodes Ready; KUBECONFIG={self.kubeconfig_path}"
        )
        return elapsed

    def down(self, *, progress: Progress | None = None) -> list[str]:
        """Stop every recorded process (pod runner first) and remove the state directory."""
        say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
        stopped = processes.stop_all(self.state, STOP_ORDER)
        # Pod processes are the pod runner's children; it stops them on SIGTERM, but a runner
        # killed hard leaves them: their pids are recorded too.
        stopped += processes.stop_all(self.state / "pods", ())
        if self.state.exists():
            subprocess.run(["rm", "-rf", str(self.state)], check=False)
        say(f"devcluster down; stopped: {', '.join(stopped) or 'nothing was running'}")
        return stopped

    # -- helpers ---------------------------------------------------------------------------

    def _ensure_process(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None
    ) -> None:
        if processes.running_pid(self.state, name) is None:
            processes.start(self.state, name, argv, env=env, cwd=self.state)

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"devcluster: timed out waiting for {what}; logs in {self.state / 'logs'}"
                )
            time.sleep(0.1)

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports.etcd_client}/health", timeout=1
            ) as r:
                return bool(json.loads(r.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _etcd_argv(self, etcd: Path) -> list[str]:
        p = self.ports
        return [
            str(etcd),
            f"--data-dir={self.state / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p.etcd_client}",
            f"--advertise-client-urls=http://127.0.0.1:{p.etcd_client}",
            f"--listen-peer-urls=http://127.0.0.1:{p.etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p.etcd_peer}",
            f"--initial-cluster=default=http://127.0.0.1:{p.etcd_peer}",
            "--unsafe-no-fsync",  # a throwaway dev store: speed over durability
            "--quota-backend-bytes=4294967296",
        ]

    def _apiserver_argv(self, binary: Path) -> list[str]:
        k = self.pki
        return [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--tls-cert-file={k.serving_crt}",
            f"--tls-private-key-file={k.serving_key}",
            f"--client-ca-file={k.ca_crt}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={k.sa_pub}",
            f"--service-account-signing-key-file={k.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            f"--cert-dir={self.state / 'apiserver-certs'}",
        ]

    def _controller_manager_argv(self, binary: Path) -> list[str]:
        k = self.pki
        return [
            str(binary),
            f"--kubeconfig={self.kubeconfig_path}",
            f"--authentication-kubeconfig={self.kubeconfig_path}",
            f"--authorization-kubeconfig={self.kubeconfig_path}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.controller_manager}",
            "--leader-elect=false",
            f"--root-ca-file={k.ca_crt}",
            f"--service-account-private-key-file={k.sa_key}",
            f"--cluster-signing-cert-file={k.ca_crt}",
            f"--cluster-signing-key-file={k.ca_key}",
            "--controllers=*,-endpoints-controller,-endpointslice-controller,"
            "-endpointslice-mirroring-controller,-service-lb-controller,-node-route-controller,"
            "-cloud-node-lifecycle-controller",
            "--concurrent-deployment-syncs=20",
            "--concurrent-replicaset-syncs=20",
            "--concurrent-gc-syncs=40",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ]

    def _scheduler_argv(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"--kubeconfig={self.kubeconfig_path}",
            f"--authentication-kubeconfig={self.kubeconfig_path}",
            f"--authorization-kubeconfig={self.kubeconfig_path}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.scheduler}",
            "--leader-elect=false",
        ]

    def _apply_nodes(self, kubectl: Path, options: ClusterOptions) -> None:
        base = [str(kubectl), f"--kubeconfig={self.kubeconfig_path}"]
        for node in gpu_nodes(options):
            name = str(node["metadata"]["name"])  # type: ignore[index]
            manifest = self.state / f"node-{name}.json"
            manifest.write_text(json.dumps(node))
            if self.api_get(f"/api/v1/nodes/{name}")[0] == 404:
                self._kubectl([*base, "create", "-f", str(manifest)], f"registering node {name}")
            # Capacity is status: set it through the status subresource, which a create may
            # drop and a re-run of ``up`` must restore.
            status = json.dumps({"status": node["status"]})
            self._kubectl(
                [
                    *base,
                    "patch",
                    "node",
                    name,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    status,
                ],
                f"setting the capacity of node {name}",
            )

    def _apply_storage_class(self, kubectl: Path) -> None:
        manifest = self.state / "storageclass.json"
        manifest.write_text(json.dumps(storage_class()))
        self._kubectl(
            [str(kubectl), f"--kubeconfig={self.kubeconfig_path}", "apply", "-f", str(manifest)],
            "creating the default StorageClass",
        )

    @staticmethod
    def _kubectl(argv: list[str], what: str) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"devcluster: {what} failed: {proc.stderr.strip()}")

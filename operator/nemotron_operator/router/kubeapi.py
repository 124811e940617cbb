"""Where the Kubernetes API is and how to authenticate to it, for the router's pod watch
(``endpoints``), without the ``kubernetes`` package: in-cluster (service account token and CA
under /var/run/secrets/kubernetes.io/serviceaccount, ``KUBERNETES_SERVICE_HOST``/``PORT``) or
a kubeconfig file (``KUBECONFIG``, current context; token or client certificate).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SERVICE_ACCOUNT_DIR", "KubeAccess", "load_kube_access"]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class KubeAccess:
    server: str  # https://host:port, no trailing slash
    ssl_context: ssl.SSLContext | bool
    token_file: Path | None = None  # re-read on every request: projected tokens rotate
    token: str | None = None

    def headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file is not None:
            token = self.token_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}


def _in_cluster(sa_dir: Path) -> KubeAccess | None:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = sa_dir / "token"
    if not host or not token_file.exists():
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    ca = sa_dir / "ca.crt"
    context = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
    return KubeAccess(server=f"https://{host}:{port}", ssl_context=context, token_file=token_file)


def _data_file(data: str, suffix: str) -> str:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - must outlive this function
        prefix="nemotron-router-", suffix=suffix, delete=False
    )
    with handle:
        handle.write(base64.b64decode(data))
    return handle.name


def _from_kubeconfig(path: Path) -> KubeAccess:
    config: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    current = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    context = contexts.get(current) if current else next(iter(contexts.values()), None)
    if context is None:
        raise ValueError(f"{path}: no usable context")
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    cluster = clusters[context["cluster"]]
    user = users.get(context.get("user", ""), {})
    server = str(cluster["server"]).rstrip("/")
    ssl_context: ssl.SSLContext | bool = True
    if server.startswith("https"):
        if cluster.get("insecure-skip-tls-verify"):
            ssl_context = False
        else:
            ctx = ssl.create_default_context()
            if "certificate-authority-data" in cluster:
                ctx.load_verify_locations(
                    cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
                )
            elif "certificate-authority" in cluster:
                ctx.load_verify_locations(cafile=cluster["certificate-authority"])
            ssl_context = ctx
        cert = user.get("client-certificate") or (
            _data_file(user["client-certificate-data"], ".crt")
            if "client-certificate-data" in user
            else None
        )
        key = user.get("client-key") or (
            _data_file(user["client-key-data"], ".key") if "client-key-data" in user else None
        )
        if cert and key:
            if not isinstance(ssl_context, ssl.SSLContext):
                ssl_context = ssl.create_default_context()
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            ssl_context.load_cert_chain(cert, key)
    token_file = Path(user["tokenFile"]) if "tokenFile" in user else None
    return KubeAccess(
        server=server, ssl_context=ssl_context, token=user.get("token"), token_file=token_file
    )


def load_kube_access(*, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeAccess:
    """In-cluster access when running in a pod, else the kubeconfig from ``KUBECONFIG``."""
    access = _in_cluster(sa_dir)
    if access is not None:
        return access
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    path = Path(kubeconfig.split(os.pathsep)[0])
    if not path.exists():
        raise RuntimeError("no in-cluster service account and no kubeconfig found")
    return _from_kubeconfig(path)

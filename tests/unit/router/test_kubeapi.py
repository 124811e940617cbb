"""Finding and authenticating to the API server (router.kubeapi)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
import yaml

from nemotron_operator.router.kubeapi import load_kube_access


def test_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("tok-1\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    access = load_kube_access(sa_dir=tmp_path)
    assert access.server == "https://127.0.0.1:6443"
    assert access.headers() == {"Authorization": "Bearer tok-1"}
    (tmp_path / "token").write_text("tok-2")  # rotated
    assert access.headers() == {"Authorization": "Bearer tok-2"}


def test_kubeconfig_with_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = {
        "current-context": "dev",
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://127.0.0.1:7443/", "insecure-skip-tls-verify": True},
            }
        ],
        "users": [{"name": "u", "user": {"token": "abc"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    access = load_kube_access(sa_dir=tmp_path / "absent")
    assert access.server == "https://127.0.0.1:7443"
    assert access.ssl_context is False
    assert access.headers() == {"Authorization": "Bearer abc"}


def test_kubeconfig_with_bad_ca_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = {
        "current-context": "dev",
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:7443",
                    "certificate-authority-data": base64.b64encode(b"not a cert").decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": {}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(ssl.SSLError):
        load_kube_access(sa_dir=tmp_path / "absent")

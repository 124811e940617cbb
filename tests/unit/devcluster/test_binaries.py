"""The pinning module the builder writes, and where binaries are looked up."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron_operator.devcluster import binaries
from nemotron_operator.devcluster.versions import PROGRAMS

KUBERNETES_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""

ETCD_GO_MOD = """module go.etcd.io/etcd/server/v3

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/client/v3 => ../client/v3
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_kubernetes_staging_modules_map_to_their_published_version() -> None:
    text = binaries.pinning_go_mod(PROGRAMS["kube-apiserver"], KUBERNETES_GO_MOD)
    version = PROGRAMS["kube-apiserver"].version  # v1.X.Y -> staging v0.X.Y
    staging = "v0." + version.split(".", 1)[1]
    assert f"require k8s.io/kubernetes {version}" in text
    assert f"\tk8s.io/api => k8s.io/api {staging}" in text
    assert f"\tk8s.io/client-go => k8s.io/client-go {staging}" in text


def test_etcd_siblings_map_to_the_same_version_and_forbidden_markers_are_kept_out() -> None:
    text = binaries.pinning_go_mod(PROGRAMS["etcd"], ETCD_GO_MOD)
    version = PROGRAMS["etcd"].version
    assert f"\tgo.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 {version}" in text
    assert f"\tgo.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 {version}" in text
    assert "FORBIDDEN" not in text


def test_cache_key_changes_with_the_build_revision() -> None:
    assert PROGRAMS["kube-apiserver"].cache_key.startswith("kubernetes-v1.")
    assert PROGRAMS["kube-apiserver"].cache_key.endswith("-r2")
    assert PROGRAMS["etcd"].cache_key == f"etcd-{PROGRAMS['etcd'].version}"


def test_kubernetes_binaries_report_their_version() -> None:
    link_vars = dict(PROGRAMS["kube-apiserver"].link_vars)
    assert (
        link_vars["k8s.io/component-base/version.gitVersion"] == PROGRAMS["kube-apiserver"].version
    )


def test_lookup_prefers_the_env_var_then_the_bin_dir_then_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEMOTRON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NEMOTRON_DEVCLUSTER_BIN_DIR", raising=False)
    monkeypatch.delenv("NEMOTRON_KWOK", raising=False)
    monkeypatch.delenv("NEMOTRON_DEVCLUSTER_USE_PATH", raising=False)
    assert binaries.find_binary("kwok") is None

    cached = tmp_path / "cache" / "bin" / PROGRAMS["kwok"].cache_key / "kwok"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    assert binaries.find_binary("kwok") == cached

    bin_dir = tmp_path / "bins"
    bin_dir.mkdir()
    (bin_dir / "kwok").write_text("")
    monkeypatch.setenv("NEMOTRON_DEVCLUSTER_BIN_DIR", str(bin_dir))
    assert binaries.find_binary("kwok") == bin_dir / "kwok"

    monkeypatch.setenv("NEMOTRON_KWOK", "/opt/kwok")
    assert binaries.find_binary("kwok") == Path("/opt/kwok")

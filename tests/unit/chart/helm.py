"""Finding and running the ``helm`` binary for the chart tests (test_chart_*.py).

helm is looked up, in order, in the env var ``HELM``, the local cluster's binaries
(``devcluster.binaries.find_binary``: its env var, bin dir and version-keyed cache
``~/.cache/nemotron-operator/bin/helm-<version>/``, where ``devcluster`` builds the pinned
upstream helm) and ``PATH``. Without one the helm tests skip and say so; CI always has it,
since the test command builds the binaries first. ``render`` parses ``helm template`` output
into a list of manifests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from nemotron_operator.devcluster.binaries import find_binary
from nemotron_operator.devcluster.versions import KUBERNETES_VERSION

# Capabilities and deprecation checks against the Kubernetes version the local cluster runs
# (a helm built without version ldflags would assume v1.20).
KUBE_VERSION_ARGS = ["--kube-version", KUBERNETES_VERSION.removeprefix("v")]

__all__ = [
    "CHART",
    "KUBE_VERSION_ARGS",
    "REPO",
    "find_helm",
    "helm",
    "render",
    "require_helm",
    "set_args",
]

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "nemotron-operator"


def find_helm() -> tuple[str | None, str]:
    """The helm binary and where it was found, or None and the places looked at."""
    from_env = os.environ.get("HELM")
    if from_env:
        if os.access(from_env, os.X_OK):
            return from_env, "env HELM"
        return None, f"env HELM={from_env!r} is not an executable file"
    cached = find_binary("helm")
    if cached is not None:
        return str(cached), "devcluster binaries"
    on_path = shutil.which("helm")
    if on_path:
        return on_path, "PATH"
    return None, "no helm: env HELM unset, not in the devcluster binary cache, not on PATH"


def require_helm() -> str:
    """The helm binary, or skip the test with the reason."""
    binary, where = find_helm()
    if binary is None:
        pytest.skip(f"helm not found ({where}); `make test` builds it into the binary cache")
    return binary


def helm(args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm with ``args``; fail the test with helm's output when ``check`` and it fails."""
    env = {
        **os.environ,
        # Keep helm away from any user's config, cache and cluster.
        "HELM_CACHE_HOME": "/nonexistent/helm-cache",
        "HELM_CONFIG_HOME": "/nonexistent/helm-config",
        "HELM_DATA_HOME": "/nonexistent/helm-data",
        "KUBECONFIG": "/nonexistent/kubeconfig",
    }
    result = subprocess.run(
        [require_helm(), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def set_args(values: dict[str, str]) -> list[str]:
    """``--set key=value`` arguments (``--set-json`` for JSON values given as ``json:...``)."""
    args: list[str] = []
    for key, value in values.items():
        if value.startswith("json:"):
            args += ["--set-json", f"{key}={value.removeprefix('json:')}"]
        else:
            args += ["--set", f"{key}={value}"]
    return args


def render(
    values: dict[str, str] | None = None,
    *,
    extra: Iterable[str] = (),
    namespace: str = "nemotron-system",
) -> list[dict[str, Any]]:
    """The manifests ``helm template`` renders (CRDs included) with ``values`` set."""
    result = helm(
        [
            "template",
            "nemotron-operator",
            str(CHART),
            "--namespace",
            namespace,
            "--include-crds",
            *KUBE_VERSION_ARGS,
            *set_args(values or {}),
            *extra,
        ]
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

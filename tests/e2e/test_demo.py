"""The README's main command, `make demo`, as an end-to-end test: the same script, run on the
session's local cluster, asserting on what it prints; then the test removes what the demo
installed (the demo itself leaves it running on purpose)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kube import Kube

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_cleanup(kube: Kube) -> Iterator[None]:
    yield
    from nemotron_operator.devcluster.binaries import ensure_binaries

    helm = ensure_binaries(["helm"])["helm"]
    kube.kubectl("delete", "namespace", "ai", "--wait=true", "--timeout=120s", check=False)
    subprocess.run(
        [
            str(helm),
            f"--kubeconfig={kube.kubeconfig}",
            "uninstall",
            "nemotron-operator",
            "-n",
            "nemotron-system",
            "--wait",
        ],
        capture_output=True,
        check=False,
    )
    kube.kubectl("delete", "namespace", "nemotron-system", "--wait=false", check=False)


def test_make_demo_answers_through_the_router_and_scales(kube: Kube, demo_cleanup: None) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed:\n{out}\n{proc.stderr}"
    assert "NemotronDeployment Ready: done" in out
    assert re.search(r"reasoning on  -> reasoning: '.+'", out), out
    assert re.search(r"reasoning on  -> answer: '.+'", out), out
    assert re.search(r"reasoning off -> answer: '.+'", out), out
    assert re.search(r"tool call     -> get_weather\(\{.*\"city\".*\}\)", out), out
    burst = re.search(
        r"burst: (\d+) completed, (\d+) failed; reasoning-on pool peaked at (\d+) replicas", out
    )
    assert burst, out
    completed, failed, peak = map(int, burst.groups())
    assert (completed, failed) == (48, 0)
    assert peak > 1, f"the autoscaler did not react to the burst:\n{out}"
    assert "Autoscaled: scaled nano-4b-on from 1 to" in out
    assert f"export KUBECONFIG={kube.kubeconfig}" in out

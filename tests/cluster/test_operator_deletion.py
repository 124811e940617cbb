"""A NemotronDeployment with autoscaling deletes cleanly whether or not an operator runs: the
operator puts no finalizer on it (kopf would, for the autoscaling daemon), and the daemon ends
once its CR is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.operator_harness import Kubectl, OperatorProcess, nemotron
from tests.support.waiting import holds_for, wait_for

SPEC: dict[str, Any] = {
    "model": {"preset": "nano-4b-v1.1"},
    "pools": {
        "reasoningOn": {"enabled": False},
        "reasoningOff": {
            "replicas": {"min": 1, "max": 2},
            "autoscaling": {"enabled": True, "intervalSeconds": 1},
        },
    },
}


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    with kubectl.namespaces(1, prefix="del") as (name,):
        yield name


def test_autoscaled_cr_deletes_while_the_operator_is_down(
    kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    operator = OperatorProcess(namespaces=[namespace], log_path=log).start()
    try:
        operator.wait_until_serving()
        kubectl.apply(nemotron("gone", namespace, SPEC))
        wait_for(
            lambda: kubectl.get("deployment", "gone-off", namespace),
            60,
            what="the pool Deployment",
        )
        wait_for(
            lambda: operator.metric("nemotron_operator_autoscaler_steps_total") > 0,
            30,
            what="the autoscaling daemon running",
        )
        body = kubectl.get("nemotrondeployment", "gone", namespace)
        assert body is not None
        assert not body["metadata"].get("finalizers")
    finally:
        operator.stop()
    kubectl.run("delete", "nemotrondeployment", "gone", "-n", namespace, "--timeout=30s")
    assert kubectl.get("nemotrondeployment", "gone", namespace) is None


def test_the_autoscaling_daemon_ends_when_its_cr_is_deleted(
    kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "operator.log"
    operator = OperatorProcess(namespaces=[namespace], log_path=log).start()
    try:
        operator.wait_until_serving()
        kubectl.apply(nemotron("short", namespace, SPEC))
        wait_for(
            lambda: operator.metric("nemotron_operator_autoscaler_steps_total") > 0,
            60,
            what="the autoscaling daemon running",
        )
        kubectl.run("delete", "nemotrondeployment", "short", "-n", namespace, "--timeout=30s")
        steps = operator.metric("nemotron_operator_autoscaler_steps_total")
        # A live daemon steps every second; one that ended (at most one step in flight when
        # the CR went) stays put over a window of several intervals.
        holds_for(
            lambda: operator.metric("nemotron_operator_autoscaler_steps_total") <= steps + 1,
            5,
            interval=0.5,
            what="no autoscaling steps after the CR was deleted",
        )
    finally:
        operator.stop()

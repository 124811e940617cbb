"""Rendering of the KEDA ScaledObject (KEDA itself is not installed here)."""

from __future__ import annotations

from nemotron_operator.autoscaler.keda import render_scaled_object
from nemotron_operator.autoscaler.settings import PolicySettings


def test_scaled_object_targets_the_pool_deployment_on_waiting_requests() -> None:
    settings = PolicySettings(
        min_replicas=1,
        max_replicas=6,
        target_queue_per_replica=5,
        scale_down_stabilization_s=300,
        interval_s=15,
        scale_to_zero_idle_s=600,
    )
    obj = render_scaled_object(
        name="nano", namespace="ai", pool="off", settings=settings, labels={"a": "b"}
    )
    assert obj["apiVersion"] == "keda.sh/v1alpha1"
    assert obj["kind"] == "ScaledObject"
    assert obj["metadata"] == {"name": "nano-off", "namespace": "ai", "labels": {"a": "b"}}
    spec = obj["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "nano-off",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 6)
    assert spec["pollingInterval"] == 15
    assert spec["cooldownPeriod"] == 600
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["threshold"] == "5"
    assert meta["query"] == 'sum(vllm:num_requests_waiting{namespace="ai",pod=~"nano-off-.*"})'
    # every value is a string where KEDA's trigger metadata requires strings
    assert all(isinstance(v, str) for v in meta.values())

"""The KEDA alternative: a ScaledObject for a pool with ``autoscaling.engine: keda``.

``render_scaled_object`` is pure (settings in, a ``keda.sh/v1alpha1`` ScaledObject dict out);
the controller applies it instead of running ``loop`` for that pool. It scales the pool
Deployment (``loop.pool_deployment_name``) on the pool's summed
``vllm:num_requests_waiting`` from a Prometheus server (KEDA reads Prometheus, not the pods),
with the CR's windows mapped onto the HPA behaviour KEDA creates. The router's own queue is
not visible to KEDA, so a pool at zero is woken by KEDA's activation on engine metrics only
when ``min >= 1``; use the built-in loop for scale to zero with held requests.
"""

from __future__ import annotations

from typing import Any

from nemotron_operator.autoscaler.loop import pool_deployment_name
from nemotron_operator.autoscaler.settings import PolicySettings

__all__ = ["DEFAULT_PROMETHEUS", "render_scaled_object", "waiting_query"]

DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"


def waiting_query(*, namespace: str, deployment: str) -> str:
    """PromQL: the pool's waiting requests summed over its engine pods."""
    return f'sum(vllm:num_requests_waiting{{namespace="{namespace}",pod=~"{deployment}-.*"}})'


def render_scaled_object(
    *,
    name: str,
    namespace: str,
    pool: str,
    settings: PolicySettings,
    labels: dict[str, str] | None = None,
    prometheus_url: str = DEFAULT_PROMETHEUS,
) -> dict[str, Any]:
    """A ScaledObject equivalent to the built-in policy's bounds and windows."""
    deployment = pool_deployment_name(name, pool)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": deployment,
            "namespace": namespace,
            "labels": dict(labels or {}),
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicaCount": settings.min_replicas,
            "maxReplicaCount": settings.max_replicas,
            "pollingInterval": max(1, round(settings.interval_s)),
            # KEDA's cooldown applies to the last step to zero only.
            "cooldownPeriod": round(settings.scale_to_zero_idle_s),
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": round(settings.scale_up_stabilization_s),
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": round(
                                settings.scale_down_stabilization_s
                            ),
                        },
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": waiting_query(namespace=namespace, deployment=deployment),
                        "threshold": f"{settings.target_queue_per_replica:g}",
                        "activationThreshold": "0",
                    },
                }
            ],
        },
    }

"""Prometheus metrics of the operator process, served by ``controller.cli`` on
``--metrics-port``: reconciles, errors, durations, status writes, leadership."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "API_REQUESTS",
    "AUTOSCALER_STEPS",
    "IS_LEADER",
    "RECONCILES",
    "RECONCILE_DURATION",
    "RECONCILE_ERRORS",
    "STATUS_WRITES",
]

RECONCILES = Counter(
    "nemotron_operator_reconciles_total", "Reconciles of NemotronDeployments.", ["result"]
)
RECONCILE_ERRORS = Counter(
    "nemotron_operator_reconcile_errors_total", "Reconciles that failed, by reason.", ["reason"]
)
RECONCILE_DURATION = Histogram(
    "nemotron_operator_reconcile_duration_seconds",
    "Duration of one reconcile (apply and status).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
STATUS_WRITES = Counter(
    "nemotron_operator_status_writes_total", "Status subresource writes (only on change)."
)
IS_LEADER = Gauge("nemotron_operator_is_leader", "1 while this process holds the Lease.")
AUTOSCALER_STEPS = Counter(
    "nemotron_operator_autoscaler_steps_total", "Autoscaling steps run, by result.", ["result"]
)
API_REQUESTS = Counter(
    "nemotron_operator_api_requests_total",
    "Requests the reconciler sent to the apiserver (kopf's own watches and patches not included).",
    ["method"],
)

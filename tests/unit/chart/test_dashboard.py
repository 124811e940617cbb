"""The Grafana dashboard (charts/nemotron-operator/dashboards/nemotron-serving.json): valid
JSON Grafana can import, panels for what the issue asks (queue depth, replicas, TTFT, tokens/s
per pool), and only metric names that docs/contracts.md promises (router, vLLM) or
kube-state-metrics exports, so a renamed metric breaks this test, not a dashboard in production."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.unit.chart.helm import CHART, REPO

DASHBOARD: dict[str, Any] = json.loads(
    (CHART / "dashboards" / "nemotron-serving.json").read_text(encoding="utf-8")
)
KUBE_STATE_METRICS = {"kube_deployment_spec_replicas"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _contract_metrics() -> set[str]:
    text = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
    return set(re.findall(r"`((?:nemotron_router_|vllm:)[a-z_]+)`", text))


def _exprs() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))
    out = set()
    for name in names:
        for suffix in HISTOGRAM_SUFFIXES:
            if name.startswith("nemotron_router_") and name.endswith(suffix):
                name = name.removesuffix(suffix)
        out.add(name)
    return out


def test_contracts_list_the_metrics() -> None:
    # Guards the parsing below: the contract names these (so an empty set cannot pass).
    assert {"nemotron_router_queue_depth", "vllm:generation_tokens_total"} <= _contract_metrics()


def test_only_promised_metrics_are_used() -> None:
    allowed = _contract_metrics() | KUBE_STATE_METRICS
    used = set().union(*(_metric_names(e) for e in _exprs()))
    assert used, "no metric found in the dashboard's queries"
    assert used <= allowed, f"not in docs/contracts.md: {sorted(used - allowed)}"


def test_panels_cover_the_issue() -> None:
    by_metric: dict[str, list[str]] = {}
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            for name in _metric_names(target["expr"]):
                by_metric.setdefault(name, []).append(panel["title"])
    assert "nemotron_router_queue_depth" in by_metric  # queue depth
    assert "vllm:num_requests_waiting" in by_metric
    assert "nemotron_router_endpoints" in by_metric  # replicas (ready)
    assert "kube_deployment_spec_replicas" in by_metric  # replicas (desired)
    assert "nemotron_router_time_to_first_token_seconds" in by_metric  # TTFT
    assert "vllm:generation_tokens_total" in by_metric  # tokens/s


def test_per_pool_panels_group_by_pool() -> None:
    for expr in _exprs():
        if "nemotron_router_" in expr or "vllm:" in expr:
            assert re.search(r"by \([^)]*\bpool\b", expr), expr


def test_importable_shape() -> None:
    assert DASHBOARD["uid"]
    assert DASHBOARD["title"]
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert {"datasource", "namespace", "deployment"} <= variables
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))

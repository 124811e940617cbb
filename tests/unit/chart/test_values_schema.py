"""values.schema.json: the chart's default values pass it, and values that would install a
broken or unsafe operator fail it. Checked with the jsonschema library (always) and through
helm itself (``helm template``, when helm is available), so the schema helm enforces at
install is the one tested."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.chart.helm import CHART, helm, set_args

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

# (case id, --set/--set-json values, what the error must mention)
BAD_VALUES: list[tuple[str, dict[str, str], str]] = [
    ("unknown top-level key", {"replicas": "2"}, "replicas"),
    ("unknown nested key (typo)", {"operator.watchNamespace": 'json:["ai"]'}, "watchNamespace"),
    ("replicas not a number", {"replicaCount": 'json:"two"'}, "replicaCount"),
    ("negative replicas", {"replicaCount": "-1"}, "replicaCount"),
    (
        "two replicas without leader election",
        {"replicaCount": "2", "operator.leaderElection.enabled": "false"},
        "enabled",
    ),
    ("port out of range", {"operator.metricsPort": "70000"}, "metricsPort"),
    ("bad pull policy", {"image.pullPolicy": "Sometimes"}, "pullPolicy"),
    ("bad digest", {"image.digest": "latest"}, "digest"),
    ("empty repository", {"image.repository": ""}, "repository"),
    (
        "invalid namespace name",
        {"operator.watchNamespaces": 'json:["Not_A_Namespace"]'},
        "watchNamespaces",
    ),
    ("root allowed", {"podSecurityContext.runAsNonRoot": "false"}, "runAsNonRoot"),
    (
        "privilege escalation",
        {"securityContext.allowPrivilegeEscalation": "true"},
        "allowPrivilegeEscalation",
    ),
    ("privileged container", {"securityContext.privileged": "true"}, "privileged"),
    ("bad scrape interval", {"metrics.podMonitor.interval": "soon"}, "interval"),
    ("bad memory quantity", {"resources.limits.memory": "lots"}, "memory"),
]


def _with(values: dict[str, str]) -> dict[str, Any]:
    """DEFAULTS with ``--set``-style dotted keys applied (JSON values as ``json:...``)."""
    merged = copy.deepcopy(DEFAULTS)
    for dotted, raw in values.items():
        # helm's --set turns "2" and "true" into a number and a bool, as YAML does; "" stays "".
        value: Any
        if raw.startswith("json:"):
            value = json.loads(raw.removeprefix("json:"))
        else:
            value = yaml.safe_load(raw) if raw else raw
        node = merged
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return merged


def test_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_default_values_pass() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": "2"},
        {"operator.watchNamespaces": 'json:["ai","team-b"]'},
        {"image.digest": "sha256:" + "a" * 64},
        {"metrics.podMonitor.router.enabled": "true", "metrics.podMonitor.engines.enabled": "true"},
        {"replicaCount": "1", "operator.leaderElection.enabled": "false"},
    ],
    ids=["two-replicas", "namespaces", "digest", "monitors", "single-without-election"],
)
def test_good_values_pass(values: dict[str, str]) -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(_with(values))


@pytest.mark.parametrize(
    ("values", "mentions"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_bad_values_fail_the_schema(values: dict[str, str], mentions: str) -> None:
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(_with(values)))
    assert errors, f"schema accepted {values}"
    text = " ".join(f"{list(e.absolute_path)} {e.message}" for e in errors)
    assert mentions in text


@pytest.mark.parametrize(
    ("values", "mentions"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_helm_refuses_bad_values(values: dict[str, str], mentions: str) -> None:
    result = helm(["template", "x", str(CHART), *set_args(values)], check=False)
    assert result.returncode != 0, f"helm rendered the chart with {values}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert mentions in result.stderr


def test_helm_accepts_defaults() -> None:
    result = helm(["template", "x", str(CHART)], check=False)
    assert result.returncode == 0, result.stderr

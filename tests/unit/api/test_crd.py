"""The generated CRD: committed copies match the models, the schema is structural (no $ref,
anyOf, null or draft-2020 keywords), and the rules the issue asks for are present."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nemotron_operator.api.crd import CRD_PATHS, build_crd, render_crd_yaml, structural_schema
from nemotron_operator.api.docs import API_DOC_PATH, render_api_doc
from nemotron_operator.api.models import NemotronDeploymentSpec

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("relative", CRD_PATHS)
def test_committed_crd_matches_models(relative: str) -> None:
    committed = (ROOT / relative).read_text(encoding="utf-8")
    assert committed == render_crd_yaml(), (
        f"{relative} drifted: run `nemotron-operator crd --write`"
    )


def test_committed_api_doc_matches_models() -> None:
    committed = (ROOT / API_DOC_PATH).read_text(encoding="utf-8")
    assert committed == render_api_doc(), "docs/api.md drifted: run `nemotron-operator crd --write`"


def _nodes(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += _nodes(value, f"{path}.{key}")
        if "items" in node:
            found += _nodes(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            found += _nodes(node["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_is_structural() -> None:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(root):
        assert not {"$ref", "$defs", "anyOf", "oneOf", "const", "title"} & node.keys(), path
        assert "type" in node, f"{path} has no type"
        assert node["type"] != "null", path
        assert node.get("additionalProperties") not in (True, False), path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True, path
        if path.startswith(".spec") and path.count(".") > 1 and not path.endswith(("[]", "}")):
            assert node.get("description"), f"{path} has no description"


def test_yaml_round_trips() -> None:
    assert yaml.safe_load(render_crd_yaml().split("\n", 1)[1]) == build_crd()


def test_rules_the_issue_names_are_present() -> None:
    text = render_crd_yaml()
    for message in (
        "replicas.min must be <= replicas.max",
        "maxTokens must be <= maxModelLen",
        "at least one pool must be enabled",
        "engineArgs must not set flags the operator manages",
        "set exactly one of model.preset or model.huggingFaceId",
    ):
        assert message in text


def test_nested_objects_default_so_cel_sees_defaults() -> None:
    spec = structural_schema(NemotronDeploymentSpec)
    pools = spec["properties"]["pools"]
    assert pools["default"] == {}
    on = pools["properties"]["reasoningOn"]
    assert on["properties"]["sampling"]["properties"]["temperature"]["default"] == 0.6
    assert on["properties"]["maxTokens"]["default"] == 32768
    off = pools["properties"]["reasoningOff"]
    assert off["properties"]["sampling"]["properties"]["temperature"]["default"] == 0.0
    assert off["properties"]["maxTokens"]["default"] == 8192
    # Optional objects stay absent unless the user writes them.
    assert "default" not in spec["properties"]["modelCache"]
    assert "default" not in spec["properties"]["hfTokenSecretRef"]


def test_status_subresource_and_columns() -> None:
    version = build_crd()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names == ["Model", "On", "Off", "Ready", "Endpoint", "Age"]

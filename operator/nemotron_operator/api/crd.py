"""The CustomResourceDefinition of NemotronDeployment, generated from ``api.models``.

pydantic emits JSON Schema (``$defs``/``$ref``, ``anyOf`` with ``null`` for optional fields,
draft-2020 ``exclusiveMinimum``); the apiserver wants a structural OpenAPI v3 schema. This
module converts one into the other, adds the printer columns and the status subresource, and
renders the YAML that ``nemotron-operator crd`` prints and ``crd --write`` commits to
``crds/`` and the Helm chart (``api.cli``). Tests compare the committed files with it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from nemotron_operator.api.models import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    NemotronDeploymentSpec,
    NemotronDeploymentStatus,
)

__all__ = [
    "CRD_NAME",
    "CRD_PATHS",
    "build_crd",
    "render_crd_yaml",
    "structural_schema",
    "write_crd_files",
]

CRD_NAME = f"{PLURAL}.{GROUP}"
# Where the generated YAML is committed, relative to the repository root.
CRD_PATHS: tuple[str, ...] = (
    "crds/nemotron-deployment.yaml",
    "charts/nemotron-operator/crds/nemotron-deployment.yaml",
)
# Every object made per CR is named ``<name>`` plus at most this suffix (``-model-cache``);
# Service names are DNS-1035 labels of at most 63 characters.
_MAX_NAME_LENGTH = 63 - len("-model-cache")

_DROPPED_KEYS = frozenset({"title", "additionalProperties", "$defs"})


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    """Convert one JSON-schema node (recursively) into a structural schema node."""
    if isinstance(node, list):
        return [_convert(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # The field's own keys (description, default) win over the referenced model's.
        node = {**target, **node}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) == 1:
            del node["anyOf"]
            if node.get("default", 0) is None:
                del node["default"]
            return _convert({**branches[0], **node}, defs)
    out: dict[str, Any] = {}
    additional = node.get("additionalProperties")
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            required = set(node.get("required", ()))
            out[key] = {
                name: _property(prop, required=name in required, defs=defs)
                for name, prop in value.items()
            }
        elif key in ("items",):
            out[key] = _convert(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        else:
            out[key] = copy.deepcopy(value)
    if isinstance(additional, dict):
        out["additionalProperties"] = _convert(additional, defs)
    elif additional is True and "properties" not in node:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if out.get("description"):
        out["description"] = " ".join(str(out["description"]).split())
    return out


def _property(prop: dict[str, Any], *, required: bool, defs: dict[str, Any]) -> dict[str, Any]:
    """A property schema; nested objects without a default get ``{}`` so that the apiserver
    fills in their fields' defaults (and CEL rules can read them) when the user omits them."""
    optional = prop.get("default", 0) is None
    converted: dict[str, Any] = _convert(prop, defs)
    if (
        not required
        and not optional
        and "default" not in converted
        and converted.get("type") == "object"
        and "properties" in converted
    ):
        converted["default"] = {}
    return converted


def structural_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model (wire names, no $ref/anyOf)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    result: dict[str, Any] = _convert(raw, raw.get("$defs", {}))
    return result


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    spec_schema = structural_schema(NemotronDeploymentSpec)
    status_schema = structural_schema(NemotronDeploymentStatus)
    root: dict[str, Any] = {
        "type": "object",
        "description": (
            "NemotronDeployment serves a Llama-3.1-Nemotron-Nano reasoning model on vLLM: two "
            "pools (reasoning on / off) behind an OpenAI-compatible router."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [
            {
                "rule": (
                    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && "
                    f"self.metadata.name.size() <= {_MAX_NAME_LENGTH}"
                ),
                "message": (
                    "metadata.name must be a DNS-1035 label (lower case letters, digits, '-', "
                    f"starting with a letter) of at most {_MAX_NAME_LENGTH} characters, since "
                    "the objects made from it carry suffixes such as -model-cache"
                ),
            }
        ],
    }
    columns = [
        {"name": "Model", "type": "string", "jsonPath": ".status.model"},
        {
            "name": "On",
            "type": "string",
            "description": "reasoning-on pool: ready/desired replicas",
            "jsonPath": ".status.pools.on.replicas",
        },
        {
            "name": "Off",
            "type": "string",
            "description": "reasoning-off pool: ready/desired replicas",
            "jsonPath": ".status.pools.off.replicas",
        },
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "nemotron-operator",
                "app.kubernetes.io/part-of": "nemotron",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["nemo", "nemotron"],
                "categories": ["all", "nemotron"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as the YAML committed to ``crds/`` (deterministic)."""
    header = (
        "# Generated by `nemotron-operator crd` from nemotron_operator.api.models; do not edit.\n"
    )
    body = yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)
    return header + body


def write_crd_files(root: Path) -> list[Path]:
    """Write the CRD YAML to every path of ``CRD_PATHS`` under ``root``; return the paths."""
    text = render_crd_yaml()
    written = []
    for relative in CRD_PATHS:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

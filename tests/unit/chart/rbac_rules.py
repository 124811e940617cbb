"""Reading RBAC rules out of rendered manifests: which verbs a set of (Cluster)Role rules grants
on a resource, the way the apiserver's RBAC authorizer matches them (group, resource,
optional resourceNames; no wildcards, which the chart must not use anyway)."""

from __future__ import annotations

from typing import Any

__all__ = ["grants", "group_of", "rules_of"]


def group_of(api_version: str) -> str:
    """The API group of ``apiVersion`` ("" for the core group)."""
    return api_version.split("/")[0] if "/" in api_version else ""


def rules_of(manifests: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    """The rules of the Role or ClusterRole ``name``."""
    for obj in manifests:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            rules: list[dict[str, Any]] = obj.get("rules") or []
            return rules
    raise LookupError(f"{kind} {name} not rendered")


def grants(
    rules: list[dict[str, Any]], *, group: str, resource: str, resource_name: str | None = None
) -> set[str]:
    """The verbs ``rules`` grant on ``group``/``resource`` (for one object when
    ``resource_name``; rules limited by resourceNames count only for a matching name)."""
    verbs: set[str] = set()
    for rule in rules:
        if group not in rule.get("apiGroups", []) or resource not in rule.get("resources", []):
            continue
        names = rule.get("resourceNames")
        if names and resource_name not in names:
            continue
        verbs |= set(rule.get("verbs", []))
    return verbs

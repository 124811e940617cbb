"""The reconcile against an in-memory stand-in for the ``kube.client`` boundary: order of
work, POST-then-/scale for pool replicas, idempotence, stopping at a refused object, status
written only on change, and the problems that become ``Degraded``."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from nemotron_operator.controller.reconcile import reconcile
from nemotron_operator.controller.settings import OperatorSettings
from nemotron_operator.kube.client import Conflict, KubeClient, KubeError

FILES = {"llama_nemotron_nano_tools.jinja": "t", "nemotron_tool_parser.py": "p"}
SETTINGS = OperatorSettings(router_image="img:test")
Key = tuple[str, str, str, str]


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


class FakeKube:
    """Stores objects; an apply replaces the applied fields and keeps the rest (enough of
    server-side apply for a single manager), bumping resourceVersion only on change."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.refuse: set[str] = set()
        self.applied: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.version = 0

    def _key(self, api_version: str, kind: str, namespace: str, name: str) -> Key:
        return (api_version, kind, namespace, name)

    def _store(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        old = self.objects.get(key)
        strip = {k: v for k, v in obj.items() if k != "status"}
        if old is not None and {k: v for k, v in old.items() if k != "status"} == strip:
            return old
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[key] = obj
        return obj

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        self.calls.append(("GET", f"{kind}/{name}"))
        found = self.objects.get(self._key(api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        self.calls.append(("LIST", kind))
        return [
            copy.deepcopy(o) for k, o in self.objects.items() if k[1] == kind and k[2] == namespace
        ]

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        meta = obj["metadata"]
        self.calls.append(("APPLY", f"{obj['kind']}/{meta['name']}"))
        self.applied.append(copy.deepcopy(obj))
        if meta["name"] in self.refuse:
            raise KubeError(422, "Invalid", f"{obj['kind']} {meta['name']}: spec: Invalid value")
        key = self._key(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        merged = copy.deepcopy(self.objects.get(key) or {"metadata": {}})
        new = copy.deepcopy(obj)
        if obj["kind"] == "Deployment":
            replicas = merged.get("spec", {}).get("replicas", 1)
            new["spec"].setdefault("replicas", replicas)
        new["metadata"] = {**merged["metadata"], **new["metadata"]}
        new["metadata"].pop("resourceVersion", None)
        if "status" in merged:
            new["status"] = merged["status"]
        old_version = merged["metadata"].get("resourceVersion")
        if old_version is not None:
            new["metadata"]["resourceVersion"] = old_version
        return copy.deepcopy(self._store(key, new))

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.calls.append(("CREATE", f"{obj['kind']}/{meta['name']}"))
        key = self._key(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if key in self.objects:
            raise Conflict(409, "AlreadyExists", "exists")
        return copy.deepcopy(self._store(key, copy.deepcopy(obj)))

    async def patch_merge(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        body: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("PATCH", f"{kind}/{name}/{subresource or ''}"))
        key = self._key(api_version, kind, namespace, name)
        obj = copy.deepcopy(self.objects.setdefault(key, {"metadata": {"name": name}}))
        _merge(obj, body)
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[key] = obj
        return copy.deepcopy(obj)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(("DELETE", f"{kind}/{name}"))
        return self.objects.pop(self._key(api_version, kind, namespace, name), None) is not None


def _body(
    spec: dict[str, Any], status: dict[str, Any] | None = None, generation: int = 1
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "serving.nemotron.dev/v1alpha1",
        "kind": "NemotronDeployment",
        "metadata": {"name": "n", "namespace": "ns", "uid": "u", "generation": generation},
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


SPEC: dict[str, Any] = {
    "model": {"preset": "nano-4b-v1.1"},
    "pools": {"reasoningOn": {"replicas": {"min": 2, "max": 4}}},
}


async def _run(kube: FakeKube, body: dict[str, Any]) -> Any:
    return await reconcile(cast(KubeClient, kube), body, settings=SETTINGS, engine_files=FILES)


def _status(kube: FakeKube) -> dict[str, Any]:
    cr = kube.objects[("serving.nemotron.dev/v1alpha1", "NemotronDeployment", "ns", "n")]
    status: dict[str, Any] = cr["status"]
    return status


def _deployment(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.objects[("apps/v1", "Deployment", "ns", name)]


async def test_first_reconcile_creates_everything_and_writes_status() -> None:
    kube = FakeKube()
    outcome = await _run(kube, _body(SPEC))
    kinds = {(k[1], k[3]) for k in kube.objects}
    assert ("Deployment", "n-on") in kinds
    assert ("ConfigMap", "n-router") in kinds
    # Pool Deployments are POSTed with their initial count; applies never carry replicas.
    assert _deployment(kube, "n-on")["spec"]["replicas"] == 2
    assert _deployment(kube, "n-off")["spec"]["replicas"] == 1
    assert ("CREATE", "Deployment/n-on") in kube.calls
    pool_applies = [
        o for o in kube.applied if o["kind"] == "Deployment" and o["metadata"]["name"] != "n"
    ]
    assert len(pool_applies) == 2
    assert all("replicas" not in o["spec"] for o in pool_applies)
    created = [a.message for a in outcome.actions if a.reason == "Created"]
    assert len(created) == 2
    status = _status(kube)
    assert status["observedGeneration"] == 1
    assert status["endpoint"] == "http://n.ns.svc.cluster.local/v1"
    # ConfigMap order: engine config before the Deployments that mount it.
    order = [c[1] for c in kube.calls if c[0] in ("APPLY", "CREATE")]
    assert order.index("ConfigMap/n-engine") < order.index("Deployment/n-on")


async def test_second_reconcile_changes_nothing() -> None:
    kube = FakeKube()
    await _run(kube, _body(SPEC))
    status = _status(kube)
    versions = {
        k: o["metadata"]["resourceVersion"]
        for k, o in kube.objects.items()
        if k[1] != "NemotronDeployment"
    }
    kube.calls.clear()
    outcome = await _run(kube, _body(SPEC, status=status))
    after = {
        k: o["metadata"]["resourceVersion"]
        for k, o in kube.objects.items()
        if k[1] != "NemotronDeployment"
    }
    assert after == versions
    assert outcome.actions == []
    assert not outcome.status_written
    assert not [c for c in kube.calls if c[0] == "PATCH"]


@pytest.mark.parametrize(("scaled_to", "expected"), [(3, 3), (4, 4), (1, 2), (9, 4)])
async def test_scale_kept_within_bounds_clamped_outside(scaled_to: int, expected: int) -> None:
    kube = FakeKube()
    await _run(kube, _body(SPEC))
    _deployment(kube, "n-on")["spec"]["replicas"] = scaled_to
    outcome = await _run(kube, _body(SPEC, status=_status(kube)))
    assert _deployment(kube, "n-on")["spec"]["replicas"] == expected
    assert any(a.reason == "Scaled" for a in outcome.actions) == (scaled_to != expected)


async def test_refused_object_stops_the_apply_and_degrades() -> None:
    kube = FakeKube()
    kube.refuse.add("n-off")
    outcome = await _run(kube, _body(SPEC))
    assert ("apps/v1", "Deployment", "ns", "n") not in kube.objects, "later objects were applied"
    degraded = {c["type"]: c for c in _status(kube)["conditions"]}["Degraded"]
    assert degraded["status"] == "True"
    assert degraded["reason"] == "ApplyFailed"
    assert "n-off" in degraded["message"]
    assert any(a.warning and a.reason == "ApplyFailed" for a in outcome.actions)


async def test_missing_secret_is_reported() -> None:
    kube = FakeKube()
    await _run(kube, _body({**SPEC, "hfTokenSecretRef": {"name": "hf"}}))
    degraded = {c["type"]: c for c in _status(kube)["conditions"]}["Degraded"]
    assert degraded["reason"] == "SecretNotFound"
    assert "spec.hfTokenSecretRef" in degraded["message"]


async def test_invalid_spec_degrades_without_applying() -> None:
    kube = FakeKube()
    outcome = await _run(
        kube,
        _body(
            {
                "model": {"preset": "nano-4b-v1.1"},
                "pools": {"reasoningOn": {"replicas": {"min": 3, "max": 1}}},
            }
        ),
    )
    assert [k for k in kube.objects if k[1] != "NemotronDeployment"] == []
    degraded = _status(kube)["conditions"][0]
    assert degraded["reason"] == "InvalidSpec"
    assert "replicas" in degraded["message"]
    assert outcome.actions[0].warning


async def test_disabling_a_pool_deletes_its_objects() -> None:
    kube = FakeKube()
    await _run(kube, _body(SPEC))
    disabled = {**SPEC, "pools": {"reasoningOn": {"enabled": False}}}
    outcome = await _run(kube, _body(disabled, status=_status(kube), generation=2))
    assert ("apps/v1", "Deployment", "ns", "n-on") not in kube.objects
    assert ("v1", "Service", "ns", "n-on") not in kube.objects
    assert {a.reason for a in outcome.actions} == {"Deleted"}
    assert _status(kube)["pools"]["on"]["enabled"] is False

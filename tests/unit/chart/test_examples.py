"""examples/*.yaml: every NemotronDeployment in them validates against the API models (the
controller reads CRs through the same ``NemotronDeployment.model_validate``), every Secret a CR
refers to is shipped next to it or documented in the file's comments, and the set of examples
covers what the issue asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nemotron_operator.api.models import API_VERSION, KIND, NemotronDeployment
from tests.unit.chart.helm import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _crs(path: Path) -> list[NemotronDeployment]:
    return [NemotronDeployment.model_validate(d) for d in _docs(path) if d.get("kind") == KIND]


def test_the_promised_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"nano-4b.yaml", "nano-8b.yaml", "scale-to-zero.yaml", "api-keys.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(path: Path) -> None:
    crs = _crs(path)
    assert crs, f"{path.name} holds no {KIND}"
    for cr in crs:
        assert cr.api_version == API_VERSION
        assert cr.metadata.get("name")
        # Examples are applied with `kubectl -n <ns> apply`, so they name no namespace.
        assert "namespace" not in cr.metadata


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_document_is_a_known_kind(path: Path) -> None:
    for doc in _docs(path):
        assert (doc.get("apiVersion"), doc.get("kind")) in {(API_VERSION, KIND), ("v1", "Secret")}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_referenced_secrets_are_shipped_or_explained(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    shipped = {d["metadata"]["name"] for d in _docs(path) if d.get("kind") == "Secret"}
    for cr in _crs(path):
        refs = []
        if cr.spec.hf_token_secret_ref is not None:
            refs.append(cr.spec.hf_token_secret_ref.name)
        if cr.spec.router.api_key_secret_ref is not None:
            refs.append(cr.spec.router.api_key_secret_ref.name)
        for name in refs:
            assert name in shipped or f"create secret generic {name}" in text, name


def test_presets_cover_both_models() -> None:
    assert _crs(REPO / "examples" / "nano-4b.yaml")[0].spec.model.preset == "nano-4b-v1.1"
    assert _crs(REPO / "examples" / "nano-8b.yaml")[0].spec.model.preset == "nano-8b-v1"


def test_scale_to_zero_example_can_reach_zero() -> None:
    (cr,) = _crs(REPO / "examples" / "scale-to-zero.yaml")
    for mode in ("on", "off"):
        pool = cr.spec.pool(mode)
        if pool.enabled:
            assert pool.replicas.min == 0
            assert pool.autoscaling.enabled


def test_api_keys_example_mounts_its_secret() -> None:
    path = REPO / "examples" / "api-keys.yaml"
    (cr,) = _crs(path)
    secrets = [d for d in _docs(path) if d.get("kind") == "Secret"]
    assert cr.spec.router.api_key_secret_ref is not None
    (secret,) = [
        s for s in secrets if s["metadata"]["name"] == cr.spec.router.api_key_secret_ref.name
    ]
    # Every key of the Secret is one accepted API key: there must be at least one.
    assert secret.get("stringData") or secret.get("data")


def test_a_bad_example_would_be_caught() -> None:
    """The validation above is not vacuous: the same path rejects a broken CR."""
    (doc,) = [d for d in _docs(REPO / "examples" / "nano-4b.yaml") if d.get("kind") == KIND]
    doc["spec"]["pools"]["reasoningOn"]["replicas"] = {"min": 3, "max": 1}
    with pytest.raises(ValueError, match=r"replicas\.min must be <= replicas\.max"):
        NemotronDeployment.model_validate(doc)

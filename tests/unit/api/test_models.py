"""The NemotronDeployment models: card defaults, and the cross-field rules that the CRD also
states in CEL (pydantic must refuse the same CRs the apiserver refuses)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from nemotron_operator.api.managed_flags import MANAGED_FLAGS, managed_flags_in
from nemotron_operator.api.models import NemotronDeploymentSpec


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"preset": "nano-4b-v1.1"}}
    spec.update(overrides)
    return spec


def test_card_defaults() -> None:
    spec = NemotronDeploymentSpec.model_validate(_spec())
    on, off = spec.pools.reasoning_on, spec.pools.reasoning_off
    assert (on.sampling.temperature, on.sampling.top_p, on.max_tokens) == (0.6, 0.95, 32768)
    assert (off.sampling.temperature, off.sampling.top_p, off.max_tokens) == (0.0, 1.0, 8192)
    assert spec.tool_calling.enabled is True
    assert spec.model.hf_id == "nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1"
    assert spec.resolved_served_model_name == "Llama-Nemotron-Nano-4B-v1.1"
    assert spec.image == "vllm/vllm-openai:v0.33.0"


def test_hugging_face_id_with_revision() -> None:
    spec = NemotronDeploymentSpec.model_validate(
        _spec(model={"huggingFaceId": "acme/nano-ft", "revision": "abc123"})
    )
    assert spec.model.hf_id == "acme/nano-ft"
    assert spec.resolved_served_model_name == "acme/nano-ft"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"model": {"preset": "nano-9b"}}, "preset"),
        ({"model": {}}, "exactly one"),
        ({"model": {"preset": "nano-4b-v1.1", "huggingFaceId": "a/b"}}, "exactly one"),
        ({"pools": {"reasoningOn": {"replicas": {"min": 3, "max": 2}}}}, "replicas.min"),
        ({"pools": {"reasoningOn": {"gpusPerReplica": -1}}}, "gpusPerReplica"),
        ({"pools": {"reasoningOff": {"maxTokens": 9000, "maxModelLen": 4096}}}, "maxModelLen"),
        ({"pools": {"reasoningOn": {"engineArgs": ["--max-model-len=4"]}}}, "manages"),
        ({"pools": {"reasoningOn": {"sampling": {"temperature": 0}}}}, "temperature"),
        (
            {"pools": {"reasoningOn": {"enabled": False}, "reasoningOff": {"enabled": False}}},
            "at least one pool",
        ),
        ({"pools": {"reasoningOff": {"enabled": False}}}, "defaultMode"),
        ({"pools": {"reasoningOn": {"replicas": {"min": "one"}}}}, "min"),
        ({"unknownField": 1}, "unknownField"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        NemotronDeploymentSpec.model_validate(_spec(**overrides))
    assert needle in str(caught.value)


@given(flag=st.sampled_from(MANAGED_FLAGS), value=st.text(max_size=10) | st.none())
def test_every_managed_flag_is_refused(flag: str, value: str | None) -> None:
    arg = flag if value is None else f"{flag}={value}"
    assert managed_flags_in([arg]) == [arg]


@given(suffix=st.from_regex(r"[a-z][a-z-]{0,20}", fullmatch=True))
def test_unmanaged_flags_pass(suffix: str) -> None:
    arg = f"--x-{suffix}"
    assert managed_flags_in([arg, "--enforce-eager", "--max-num-seqs=64"]) == []


@given(low=st.integers(0, 50), high=st.integers(0, 50))
def test_replica_bounds_property(low: int, high: int) -> None:
    raw = _spec(pools={"reasoningOn": {"replicas": {"min": low, "max": high}}})
    if low <= high:
        spec = NemotronDeploymentSpec.model_validate(raw)
        assert spec.pools.reasoning_on.replicas.min == low
    else:
        with pytest.raises(ValidationError):
            NemotronDeploymentSpec.model_validate(raw)

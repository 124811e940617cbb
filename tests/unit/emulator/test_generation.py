"""Deterministic fake output: lengths, finish reasons, stop strings, tool calls, reasoning."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemotron_operator.engine.emulator.generation import (
    GenerationRequest,
    ToolCallPlan,
    arguments_for_schema,
    count_prompt_tokens,
    plan_generation,
    seed_for,
)
from nemotron_operator.engine.reasoning import split_reasoning
from nemotron_operator.engine.toolcall import parse_tool_calls


def test_same_seed_same_output_other_seed_other_output() -> None:
    a = plan_generation(GenerationRequest(seed=seed_for("a"), max_tokens=500))
    assert a == plan_generation(GenerationRequest(seed=seed_for("a"), max_tokens=500))
    assert a.text != plan_generation(GenerationRequest(seed=seed_for("b"), max_tokens=500)).text


def test_prompt_tokens_are_four_characters() -> None:
    assert count_prompt_tokens("") == 1
    assert count_prompt_tokens("abcd") == 1
    assert count_prompt_tokens("abcde") == 2


@settings(max_examples=200)
@given(
    seed=st.integers(0, 2**63),
    max_tokens=st.integers(1, 3000),
    min_tokens=st.integers(0, 3000),
    ignore_eos=st.booleans(),
    reasoning=st.booleans(),
)
def test_lengths_follow_max_min_and_ignore_eos(
    seed: int, max_tokens: int, min_tokens: int, ignore_eos: bool, reasoning: bool
) -> None:
    request = GenerationRequest(
        seed=seed,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=ignore_eos,
        reasoning=reasoning,
    )
    out = plan_generation(request)
    natural = len(
        plan_generation(GenerationRequest(seed=seed, max_tokens=10**6, reasoning=reasoning)).pieces
    )
    assert 1 <= len(out.pieces) <= max_tokens
    assert len(out.pieces) >= min(min_tokens, max_tokens)
    if ignore_eos:
        assert len(out.pieces) == max_tokens
        assert out.finish_reason == "length"
    elif natural > max_tokens:
        assert out.finish_reason == "length"
    else:
        assert out.finish_reason == "stop"
        assert len(out.pieces) == max(natural, min(min_tokens, max_tokens))


def test_reasoning_on_writes_a_think_section_first() -> None:
    out = plan_generation(GenerationRequest(seed=1, max_tokens=10_000, reasoning=True))
    assert out.text.startswith("<think>\n")
    reasoning, answer = split_reasoning(out.text)
    assert reasoning
    assert answer
    off = plan_generation(GenerationRequest(seed=1, max_tokens=10_000))
    assert "<think>" not in off.text


def test_stop_string_truncates_and_says_which() -> None:
    full = plan_generation(GenerationRequest(seed=7, max_tokens=200)).text
    word = full.split()[5]
    out = plan_generation(GenerationRequest(seed=7, max_tokens=200, stop=(word, "zzz-never")))
    assert out.text == full[: full.index(word)]
    assert out.finish_reason == "stop"
    assert out.stop_reason == word
    kept = plan_generation(
        GenerationRequest(seed=7, max_tokens=200, stop=(word,), include_stop_str_in_output=True)
    )
    assert kept.text == full[: full.index(word) + len(word)]


def test_tool_call_output_parses_with_our_parser() -> None:
    calls = (
        ToolCallPlan("calculate_tip", {"bill_total": 100, "tip_percentage": 18}),
        ToolCallPlan("convert_currency", {"amount": 5, "to_currency": "EUR"}),
    )
    out = plan_generation(
        GenerationRequest(seed=3, max_tokens=4000, reasoning=True, tool_calls=calls)
    )
    _, answer = split_reasoning(out.text)
    parsed = parse_tool_calls(answer)
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [
        (c.name, c.arguments) for c in calls
    ]
    assert not parsed.content


def test_arguments_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "flag": {"type": "boolean"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "inner": {"type": "object", "properties": {"k": {"type": ["null", "integer"]}}},
            "name": {"type": "string"},
        },
    }
    value = arguments_for_schema(schema, random.Random(0))
    assert isinstance(value["n"], int)
    assert isinstance(value["x"], float)
    assert value["flag"] is True
    assert value["unit"] == "c"
    assert len(value["tags"]) == 1
    assert isinstance(value["tags"][0], str)
    assert isinstance(value["inner"]["k"], int)
    assert isinstance(value["name"], str)


def test_max_tokens_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        plan_generation(GenerationRequest(seed=0, max_tokens=0))

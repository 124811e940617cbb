"""Request parsing as vLLM validates it (pure: no server)."""

from __future__ import annotations

from typing import Any

import pytest

from nemotron_operator.engine.emulator.protocol import (
    ProtocolContext,
    RequestError,
    parse_chat,
    parse_completion,
    reasoning_mode,
)
from nemotron_operator.engine.template import render_chat

TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def _ctx(*, auto_tools: bool = True, max_model_len: int = 131072) -> ProtocolContext:
    return ProtocolContext(
        served_model_names=("nano", "alias"),
        max_model_len=max_model_len,
        enable_auto_tool_choice=auto_tools,
        render_chat=lambda messages, tools: render_chat(messages, tools=tools),
    )


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": "nano", "messages": [{"role": "user", "content": "hi"}], **fields}


@pytest.mark.parametrize(
    ("content", "mode"),
    [
        ("detailed thinking on", "on"),
        ("Detailed Thinking OFF", "off"),
        ([{"type": "text", "text": "detailed thinking on"}], "on"),
        ("be brief", "none"),
    ],
)
def test_reasoning_mode_comes_from_the_system_prompt(content: Any, mode: str) -> None:
    assert (
        reasoning_mode([{"role": "system", "content": content}, {"role": "user", "content": "x"}])
        == mode
    )


def test_sampling_fields_are_reported_as_received() -> None:
    job = parse_chat(_chat(temperature=0.6, top_p=0.95, max_tokens=10, user="u"), _ctx())
    assert job.sampling == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 10}


def test_any_served_name_is_accepted_and_model_defaults_to_the_first() -> None:
    assert parse_chat(_chat(model="alias"), _ctx()).model == "alias"
    body = _chat()
    del body["model"]
    assert parse_chat(body, _ctx()).model == "nano"


def test_default_max_tokens_is_the_room_left() -> None:
    job = parse_chat(_chat(), _ctx(max_model_len=1000))
    assert job.generation.max_tokens == 1000 - job.prompt_tokens


def test_max_completion_tokens_wins() -> None:
    assert (
        parse_chat(_chat(max_tokens=5, max_completion_tokens=7), _ctx()).generation.max_tokens == 7
    )


@pytest.mark.parametrize(
    ("body", "ctx", "status", "message"),
    [
        (_chat(model="x"), _ctx(), 404, "does not exist"),
        (_chat(max_tokens=2000), _ctx(max_model_len=1000), 400, "maximum context length is 1000"),
        (_chat(tools=[TOOL]), _ctx(auto_tools=False), 400, "--enable-auto-tool-choice"),
        (_chat(tool_choice="required"), _ctx(), 400, "`tools` must be set"),
        (
            _chat(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}),
            _ctx(),
            400,
            "has not been passed",
        ),
        (_chat(n=2), _ctx(), 400, "n=1"),
        (_chat(stream_options={"include_usage": True}), _ctx(), 400, "stream=True"),
        (_chat(messages=[]), _ctx(), 400, "messages"),
        (_chat(max_tokens=0), _ctx(), 400, "at least 1"),
        (_chat(stop=3), _ctx(), 400, "stop"),
    ],
)
def test_refusals(body: dict[str, Any], ctx: ProtocolContext, status: int, message: str) -> None:
    with pytest.raises(RequestError, match=message) as refused:
        parse_chat(body, ctx)
    assert refused.value.status == status
    assert refused.value.body()["error"]["code"] == status


def test_tool_choice_none_or_no_mention_plans_no_call() -> None:
    assert parse_chat(_chat(tools=[TOOL], tool_choice="none"), _ctx()).generation.tool_calls == ()
    assert parse_chat(_chat(tools=[TOOL]), _ctx()).generation.tool_calls == ()
    named = _chat(tools=[TOOL], messages=[{"role": "user", "content": "call get_time"}])
    assert [c.name for c in parse_chat(named, _ctx()).generation.tool_calls] == ["get_time"]


def test_completion_prompts() -> None:
    assert parse_completion({"model": "nano", "prompt": "abcdefgh"}, _ctx()).prompt_tokens == 2
    assert parse_completion({"model": "nano", "prompt": ["abcd"]}, _ctx()).prompt_tokens == 1
    assert parse_completion({"model": "nano", "prompt": [1, 2, 3]}, _ctx()).prompt_tokens == 3
    assert parse_completion({"model": "nano", "prompt": "x"}, _ctx()).generation.max_tokens == 16
    with pytest.raises(RequestError, match="prompt"):
        parse_completion({"model": "nano", "prompt": 5}, _ctx())

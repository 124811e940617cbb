"""The emulator as a real subprocess, driven with the official ``openai`` client: response shapes,
streaming, tools, reasoning, exact lengths, the sampling header, /metrics and errors."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.unit.emulator.engine_process import MODEL, SERVED, Emulator, start_emulator, write_mount

TIP_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "calculate_tip",
        "description": "Tip for a bill",
        "parameters": {
            "type": "object",
            "properties": {
                "bill_total": {"type": "integer"},
                "tip_percentage": {"type": "integer"},
            },
            "required": ["bill_total", "tip_percentage"],
        },
    },
}
CURRENCY_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "convert_currency",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number"},
                "from_currency": {"type": "string"},
                "to_currency": {"type": "string", "enum": ["EUR", "USD"]},
            },
        },
    },
}


def _messages(mode: str, user: str = "What is 18% of 100?") -> list[dict[str, str]]:
    return [
        {"role": "system", "content": f"detailed thinking {mode}"},
        {"role": "user", "content": user},
    ]


@pytest.fixture(scope="module")
def mount(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mount(tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="module")
def engine(mount: Path) -> Iterator[Emulator]:
    with start_emulator(mount) as emulator:
        yield emulator


@pytest.fixture
def client(engine: Emulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{engine.base_url}/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_models_lists_the_served_name(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [SERVED]
    assert models.data[0].owned_by == "vllm"
    assert models.data[0].model_extra is not None
    assert models.data[0].model_extra["root"] == MODEL


def test_chat_reasoning_off_answers_without_think(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=SERVED, messages=_messages("off"), temperature=0)  # type: ignore[arg-type]
    choice = reply.choices[0]
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert choice.finish_reason == "stop"
    assert choice.message.content
    assert "<think>" not in choice.message.content
    assert choice.message.model_extra is not None
    assert choice.message.model_extra["reasoning"] is None
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.usage.completion_tokens > 0


def test_chat_reasoning_on_fills_reasoning_then_answer(client: openai.OpenAI, mount: Path) -> None:
    reply = client.chat.completions.create(model=SERVED, messages=_messages("on"), max_tokens=4000)  # type: ignore[arg-type]
    message = reply.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning"], "reasoning on must produce a reasoning section"
    assert extra["reasoning_content"] == extra["reasoning"]
    assert message.content
    assert "<think>" not in message.content
    assert "</think>" not in message.content


def test_same_request_gives_same_answer(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=SERVED, messages=_messages("off"))  # type: ignore[arg-type]
    second = client.chat.completions.create(model=SERVED, messages=_messages("off"))  # type: ignore[arg-type]
    other = client.chat.completions.create(
        model=SERVED, messages=_messages("off", "Another question?")
    )  # type: ignore[arg-type]
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content


@pytest.mark.parametrize("max_tokens", [1, 7, 300])
def test_ignore_eos_gives_exactly_max_tokens(client: openai.OpenAI, max_tokens: int) -> None:
    reply = client.chat.completions.create(
        model=SERVED,
        messages=_messages("off"),  # type: ignore[arg-type]
        max_tokens=max_tokens,
        extra_body={"ignore_eos": True},
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == max_tokens
    assert reply.choices[0].finish_reason == "length"


def test_min_tokens_lengthens_the_answer(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SERVED,
        messages=_messages("off"),  # type: ignore[arg-type]
        max_tokens=2000,
        extra_body={"min_tokens": 1500},
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 1500
    assert reply.choices[0].finish_reason == "stop"


def test_stop_string_cuts_the_answer(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model=SERVED, messages=_messages("off"), max_tokens=100)  # type: ignore[arg-type]
    text = full.choices[0].message.content or ""
    word = text.split()[3]
    cut = client.chat.completions.create(
        model=SERVED,
        messages=_messages("off"),  # type: ignore[arg-type]
        max_tokens=100,
        stop=[word],
    )
    assert cut.choices[0].message.content == text[: text.index(word)] or None
    assert cut.choices[0].finish_reason == "stop"


def test_streaming_adds_up_to_the_whole_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=SERVED, messages=_messages("on"), max_tokens=5000)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model=SERVED,
        messages=_messages("on"),  # type: ignore[arg-type]
        max_tokens=5000,
        stream=True,
        stream_options={"include_usage": True},
    )
    content, reasoning, finish, usage, ids = "", "", None, None, set()
    for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            assert chunk.choices == []
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += (delta.model_extra or {}).get("reasoning") or ""
        finish = chunk.choices[0].finish_reason or finish
    assert len(ids) == 1
    assert content == whole.choices[0].message.content
    assert reasoning == (whole.choices[0].message.model_extra or {})["reasoning"]
    assert finish == whole.choices[0].finish_reason
    assert usage is not None
    assert whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=SERVED,
        messages=_messages("off"),  # type: ignore[arg-type]
        stream=True,
    )
    chunks = list(stream)
    assert chunks
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("mode", ["on", "off"])
def test_required_tool_choice_returns_parsed_tool_calls(client: openai.OpenAI, mode: str) -> None:
    reply = client.chat.completions.create(
        model=SERVED,
        messages=_messages(mode, "What tip on a $100 bill?"),  # type: ignore[arg-type]
        tools=[TIP_TOOL, CURRENCY_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=4000,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["calculate_tip"]  # type: ignore[union-attr]
    arguments = json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
    assert set(arguments) == {"bill_total", "tip_percentage"}
    assert all(isinstance(v, int) for v in arguments.values())
    assert "<TOOLCALL>" not in (choice.message.content or "")
    assert calls[0].id.startswith("chatcmpl-tool-")


def test_named_tool_choice_calls_that_function(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SERVED,
        messages=_messages("off", "Convert money please"),  # type: ignore[arg-type]
        tools=[TIP_TOOL, CURRENCY_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "convert_currency"}},
    )
    calls = reply.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["convert_currency"]  # type: ignore[union-attr]
    arguments = json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
    assert arguments["to_currency"] == "EUR"


def test_auto_tool_choice_calls_tools_named_in_the_prompt(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SERVED,
        messages=_messages("off", "Use calculate_tip and then convert_currency"),  # type: ignore[arg-type]
        tools=[TIP_TOOL, CURRENCY_TOOL],  # type: ignore[list-item]
    )
    names = [c.function.name for c in reply.choices[0].message.tool_calls or []]  # type: ignore[union-attr]
    assert names == ["calculate_tip", "convert_currency"]
    plain = client.chat.completions.create(
        model=SERVED,
        messages=_messages("off", "Just say hello"),  # type: ignore[arg-type]
        tools=[TIP_TOOL],  # type: ignore[list-item]
    )
    assert not plain.choices[0].message.tool_calls
    assert plain.choices[0].finish_reason == "stop"


def test_streamed_tool_calls_add_up_to_the_whole_ones(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = {
        "model": SERVED,
        "messages": _messages("on", "Use calculate_tip and then convert_currency"),
        "tools": [TIP_TOOL, CURRENCY_TOOL],
        "max_tokens": 4000,
    }
    whole = client.chat.completions.create(**kwargs)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client.chat.completions.create(**kwargs, stream=True):
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            assert delta.function is not None
            if delta.function.name:
                entry["name"] = delta.function.name
                assert delta.id
                assert delta.type == "function"
            entry["arguments"] += delta.function.arguments or ""
    expected = [
        {"name": c.function.name, "arguments": c.function.arguments}  # type: ignore[union-attr]
        for c in whole.choices[0].message.tool_calls or []
    ]
    assert [calls[i] for i in sorted(calls)] == expected
    assert finish == "tool_calls"


def test_completions_whole_and_streamed(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=SERVED, prompt="Once upon a time", max_tokens=64)
    assert whole.object == "text_completion"
    assert whole.choices[0].text
    assert whole.usage is not None
    assert whole.usage.prompt_tokens == 4  # 16 characters at ~4 per token
    text = ""
    usage = None
    for chunk in client.completions.create(
        model=SERVED,
        prompt="Once upon a time",
        max_tokens=64,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.text
    assert text == whole.choices[0].text
    assert usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_completions_default_to_16_tokens_like_vllm(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=SERVED, prompt="x", extra_body={"ignore_eos": True})
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 16


def test_sampling_header_reports_what_was_received(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=SERVED,
        messages=_messages("on"),  # type: ignore[arg-type]
        temperature=0.6,
        top_p=0.95,
        max_tokens=32,
    )
    assert json.loads(raw.headers["X-Emulator-Sampling"]) == {
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 32,
    }
    assert raw.headers["X-Emulator-Mode"] == "on"
    with client.chat.completions.with_streaming_response.create(
        model=SERVED,
        messages=_messages("off"),  # type: ignore[arg-type]
        temperature=0,
        stream=True,
    ) as streamed:
        assert json.loads(streamed.headers["X-Emulator-Sampling"]) == {"temperature": 0}
        assert streamed.headers["X-Emulator-Mode"] == "off"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="nope", messages=_messages("off"))  # type: ignore[arg-type]


def test_too_long_a_request_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="maximum context length is 131072") as refused:
        client.chat.completions.create(model=SERVED, messages=_messages("off"), max_tokens=131072)  # type: ignore[arg-type]
    assert json.loads(refused.value.response.headers["X-Emulator-Sampling"]) == {
        "max_tokens": 131072
    }


def test_metrics_carry_vllm_names(client: openai.OpenAI, engine: Emulator) -> None:
    client.chat.completions.create(
        model=SERVED, messages=_messages("off"), max_tokens=10, extra_body={"ignore_eos": True}
    )  # type: ignore[arg-type]
    text = httpx.get(f"{engine.base_url}/metrics").text
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
    ):
        assert f'{name}{{model_name="{SERVED}"' in text or f"{name}{{" in text, name
    generated = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("vllm:generation_tokens_total{")
    )
    assert generated >= 10


async def test_async_client_streams(engine: Emulator) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{engine.base_url}/v1", api_key="unused", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model=SERVED,
            messages=_messages("off"),  # type: ignore[arg-type]
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        async with stream:
            pieces = [chunk async for chunk in stream]
    # openai's SSE decoder leaves inner async generators for the garbage collector; let their
    # aclose() tasks run now rather than be reported as leaked by the conftest fixture.
    gc.collect()
    for _ in range(3):
        await asyncio.sleep(0)
    assert pieces[-1].usage is not None
    assert pieces[-1].usage.completion_tokens == 20
    assert pieces[0].choices[0].delta.role == "assistant"

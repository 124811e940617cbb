"""Response shapes built without a server: SSE chunks and whole answers."""

from __future__ import annotations

import json

import pytest

from nemotron_operator.engine.emulator.shaping import (
    ChunkWriter,
    OutputStream,
    chat_response,
    usage,
)


@pytest.mark.parametrize("chat", [True, False])
def test_text_chunks_are_the_json_of_the_full_shape(chat: bool) -> None:
    writer = ChunkWriter(chat=chat, model="m")
    key = "content" if chat else "text"
    chunk = json.loads(writer.choice({key: 'say "hi"\n'}).removeprefix(b"data: "))
    choice = {"index": 0, "logprobs": None, "finish_reason": None}
    choice |= {"delta": {key: 'say "hi"\n'}} if chat else {"text": 'say "hi"\n'}
    assert chunk == {
        "id": writer.id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": chunk["created"],
        "model": "m",
        "choices": [choice],
    }


def test_whole_answer_splits_reasoning_and_tool_calls() -> None:
    text = '<think>\nhmm\n</think>\n\n<TOOLCALL>[{"name": "f", "arguments": {"a": 1}}]</TOOLCALL>'
    body = chat_response(
        model="m",
        text=text,
        finish_reason="stop",
        parse_reasoning=True,
        parse_tools=True,
        usage_body=usage(3, 4),
    )
    message = body["choices"][0]["message"]
    assert message["reasoning"] == message["reasoning_content"]
    assert "hmm" in message["reasoning"]
    assert message["content"] is None
    assert [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message["tool_calls"]
    ] == [("f", {"a": 1})]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 7,
        "completion_tokens": 4,
        "prompt_tokens_details": None,
    }


def test_streamed_deltas_add_up_whatever_the_cuts() -> None:
    text = (
        '<think>\nhmm\n</think>\n\nok <TOOLCALL>[{"name": "f", "arguments": {"a": 1}}]</TOOLCALL>'
    )
    for size in (1, 3, 7, len(text)):
        stream = OutputStream(parse_reasoning=True, parse_tools=True)
        deltas = [d for i in range(0, len(text), size) for d in stream.push(text[i : i + size])]
        deltas += stream.finish()
        reasoning = "".join(d.get("reasoning", "") for d in deltas)
        content = "".join(d.get("content", "") for d in deltas)
        calls = [c for d in deltas for c in d.get("tool_calls", [])]
        assert "hmm" in reasoning
        assert content.strip() == "ok"
        assert calls[0]["function"]["name"] == "f"
        assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"a": 1}
        assert stream.tools_called

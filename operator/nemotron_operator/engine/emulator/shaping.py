"""Response bodies and stream chunks in vLLM's OpenAI shapes, and the output parsers applied as
vLLM applies them: the reasoning parser first (``<think>`` text -> ``reasoning``), then the
tool-call parser on what remains (``<TOOLCALL>`` -> ``tool_calls``).

``OutputStream`` turns released token text into chat deltas; ``chat_response`` /
``completion_response`` build whole answers. Used by ``server``; parsers come from
``engine.toolcall`` and ``engine.reasoning``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from nemotron_operator.engine.reasoning import ReasoningStream, split_reasoning
from nemotron_operator.engine.toolcall import ToolCallStream, parse_tool_calls

__all__ = [
    "ChunkWriter",
    "OutputStream",
    "chat_response",
    "completion_response",
    "new_id",
    "usage",
]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


def _tool_call(name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl-tool"),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def chat_response(
    *,
    model: str,
    text: str,
    finish_reason: str,
    parse_reasoning: bool,
    parse_tools: bool,
    usage_body: dict[str, Any],
    stop_reason: str | None = None,
) -> dict[str, Any]:
    """A whole ``chat.completion`` for the generated ``text``."""
    reasoning: str | None = None
    content: str | None = text
    if parse_reasoning:
        reasoning, content = split_reasoning(text)
    tool_calls: list[dict[str, Any]] = []
    if parse_tools and content is not None:
        parsed = parse_tool_calls(content)
        content = parsed.content
        tool_calls = [_tool_call(c.name, c.arguments) for c in parsed.tool_calls]
    if tool_calls:
        finish_reason = "tool_calls"
    content = content or None  # vLLM's parsers return None, not "", for no content
    message = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": tool_calls,
        "reasoning": reasoning,
        "reasoning_content": reasoning,
    }
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": stop_reason,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_body,
        "prompt_logprobs": None,
        "kv_transfer_params": None,
    }


def completion_response(
    *,
    model: str,
    text: str,
    finish_reason: str,
    usage_body: dict[str, Any],
    stop_reason: str | None = None,
) -> dict[str, Any]:
    """A whole ``text_completion``."""
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": stop_reason,
                "prompt_logprobs": None,
            }
        ],
        "usage": usage_body,
        "system_fingerprint": None,
        "kv_transfer_params": None,
    }


@dataclass
class OutputStream:
    """Released token text -> chat ``delta`` objects, through the parsers as vLLM streams them."""

    parse_reasoning: bool
    parse_tools: bool
    _reasoning: ReasoningStream | None = None
    _tools: ToolCallStream | None = None
    _ids: dict[int, str] = field(default_factory=dict)
    tools_called: bool = False

    def __post_init__(self) -> None:
        self._reasoning = ReasoningStream() if self.parse_reasoning else None
        self._tools = ToolCallStream() if self.parse_tools else None

    def push(self, text: str) -> list[dict[str, Any]]:
        return self._deltas(text, final=False)

    def finish(self) -> list[dict[str, Any]]:
        return self._deltas("", final=True)

    def _deltas(self, text: str, *, final: bool) -> list[dict[str, Any]]:
        reasoning, content = "", text
        if self._reasoning is not None:
            if final:
                reasoning, content = self._reasoning.finish()
            else:
                reasoning, content = self._reasoning.push(text)
        out: list[dict[str, Any]] = []
        if reasoning:
            out.append({"reasoning": reasoning, "reasoning_content": reasoning})
        if self._tools is None:
            if content:
                out.append({"content": content})
            return out
        deltas = [self._tools.push(content)] if content else []
        if final:
            deltas.append(self._tools.finish())
        for delta in deltas:
            if delta.content:
                out.append({"content": delta.content})
            if delta.tool_calls:
                self.tools_called = True
                calls = [self._tool_delta(c.index, c.name, c.arguments) for c in delta.tool_calls]
                out.append({"tool_calls": calls})
        return out

    def _tool_delta(self, index: int, name: str | None, arguments: str) -> dict[str, Any]:
        if name is not None:
            self._ids[index] = new_id("chatcmpl-tool")
            return {
                "index": index,
                "id": self._ids[index],
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        return {"index": index, "function": {"arguments": arguments}}


class ChunkWriter:
    """Pre-rendered SSE framing for one streamed answer: each chunk is the fixed head (id,
    object, created, model) plus the JSON of its choice -- the emulator writes tens of thousands
    of chunks a second, so the shared part is rendered once."""

    def __init__(self, *, chat: bool, model: str) -> None:
        self.chat = chat
        self.id = new_id("chatcmpl" if chat else "cmpl")
        obj = "chat.completion.chunk" if chat else "text_completion"
        head = {"id": self.id, "object": obj, "created": int(time.time()), "model": model}
        self._head = b"data: " + json.dumps(head)[:-1].encode() + b', "choices": ['
        self._tail = b"]}\n\n"
        # the common chunk -- one piece of text, no finish -- skips building a dict
        self._text_key = "content" if chat else "text"
        opening = b'{"index": 0, "delta": {"content": ' if chat else b'{"index": 0, "text": '
        closing = b"}" if chat else b""
        self._text_head = self._head + opening
        self._text_tail = closing + b', "logprobs": null, "finish_reason": null}' + self._tail

    def choice(
        self,
        payload: dict[str, Any],
        *,
        finish_reason: str | None = None,
        stop_reason: str | None = None,
    ) -> bytes:
        """A chunk with one choice: ``payload`` is the delta (chat) or ``{"text": ...}``."""
        if finish_reason is None and len(payload) == 1:
            text = payload.get(self._text_key)
            if isinstance(text, str):
                return self._text_head + json.dumps(text).encode() + self._text_tail
        if self.chat:
            body: dict[str, Any] = {
                "index": 0,
                "delta": payload,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        else:
            body = {
                "index": 0,
                "text": payload.get("text", ""),
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        if finish_reason is not None:
            body["stop_reason"] = stop_reason
        return self._head + json.dumps(body).encode() + self._tail

    def usage_chunk(self, usage_body: dict[str, Any]) -> bytes:
        return self._head + b'], "usage": ' + json.dumps(usage_body).encode() + b"}\n\n"

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"

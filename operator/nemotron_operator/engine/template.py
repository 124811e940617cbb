"""Renders the chat template mounted into vLLM pods (``engine/assets/llama_nemotron_nano_tools.jinja``)
the way Hugging Face transformers' ``apply_chat_template`` does -- and so the way vLLM does.

The engine emulator (``engine.emulator``) turns chat requests into prompts with
``render_chat`` (after ``vllm_conversation`` / ``vllm_tools`` for vLLM's exact preprocessing); the tests in ``tests/unit/engine/test_template.py`` pin the rendered strings.
The file itself is read through ``engine.assets`` so the emulator and the ConfigMap agree.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, NoReturn

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from nemotron_operator.engine.assets import CHAT_TEMPLATE_FILE

__all__ = [
    "chat_environment",
    "load_template_source",
    "render_chat",
    "vllm_conversation",
    "vllm_tools",
]


def load_template_source() -> str:
    """The text of the chat template file shipped in ``engine/assets/``."""
    folder = resources.files("nemotron_operator.engine") / "assets"
    return (folder / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")


def _raise_exception(message: str) -> NoReturn:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # transformers replaces Jinja's own tojson, which sorts keys and HTML-escapes; a model sees
    # keys in the order the client sent them and raw non-ASCII text.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(format_: str) -> str:
    return datetime.now().strftime(format_)


def chat_environment() -> ImmutableSandboxedEnvironment:
    """A Jinja environment configured as transformers' ``_compile_jinja_template`` configures it
    (its ``AssistantTracker`` extension only serves ``return_assistant_tokens_mask``; it changes
    no output and is left out)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def vllm_conversation(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as vLLM 0.33 hands them to the template for our file: vLLM detects that the
    template reads content parts ("openai" content format), so text content becomes a list of
    text parts (null content an empty list), a tool result's text parts are joined with
    newlines, and string tool-call arguments are parsed into objects (``{}`` when empty, invalid
    or not an object). ``render_chat(vllm_conversation(m))`` is the prompt vLLM renders."""
    out = []
    for message in messages:
        converted = dict(message)
        content = message.get("content")
        if content is None:
            content = []
        elif isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if message.get("role") == "tool" and all(
            isinstance(part, dict) and part.get("type") == "text" for part in content
        ):
            converted["content"] = "\n".join(str(part.get("text", "")) for part in content)
        else:
            converted["content"] = content
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and isinstance(calls, list):
            if calls:
                converted["tool_calls"] = [_with_object_arguments(call) for call in calls]
            else:
                del converted["tool_calls"]
        out.append(converted)
    return out


def vllm_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The tool list as vLLM 0.33 hands it to the template: each tool through its request model
    and back (``ChatCompletionToolsParam.model_dump()``), so ``description`` and ``parameters``
    are always there (``null`` when absent), ``strict``/``defer_loading`` only when set, other
    keys dropped."""
    if tools is None:
        return None
    out = []
    for tool in tools:
        function = tool.get("function") or {}
        dumped = {
            "name": function.get("name"),
            "description": function.get("description"),
            "parameters": function.get("parameters"),
        }
        if function.get("strict") is not None:
            dumped["strict"] = function["strict"]
        # vLLM copies a tool-level defer_loading into the function when the function has none.
        defer = function.get("defer_loading")
        defer = tool.get("defer_loading") if defer is None else defer
        if defer is not None:
            dumped["defer_loading"] = defer
        converted: dict[str, Any] = {"type": "function", "function": dumped}
        if tool.get("defer_loading") is not None:
            converted["defer_loading"] = tool["defer_loading"]
        out.append(converted)
    return out


def _with_object_arguments(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict):
        return call
    arguments = function.get("arguments")
    if isinstance(arguments, str) and arguments:
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = None
    if not isinstance(arguments, dict):
        arguments = {}
    return {**call, "function": {**function, "arguments": arguments}}


@cache
def _compiled() -> jinja2.Template:
    return chat_environment().from_string(load_template_source())


def render_chat(
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text for an OpenAI-style message list (and tool list), exactly as vLLM renders it
    with ``--chat-template`` pointing at our file. Raises ``jinja2.TemplateError`` for a message
    the template refuses (an unknown role, a non-text content part)."""
    return _compiled().render(
        messages=messages,
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
    )

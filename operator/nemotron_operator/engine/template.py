"""Renders the chat template mounted into vLLM pods (``engine/assets/llama_nemotron_nano_tools.jinja``)
the way Hugging Face transformers' ``apply_chat_template`` does -- and so the way vLLM does.

The engine emulator (``engine.emulator``) turns chat requests into prompts with
``render_chat``; the tests in ``tests/unit/engine/test_template.py`` pin the rendered strings.
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

__all__ = ["chat_environment", "load_template_source", "render_chat"]


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

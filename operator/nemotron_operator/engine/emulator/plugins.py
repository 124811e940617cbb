"""Loads what vLLM loads at start-up from the paths on its command line: the chat template
(``--chat-template``) and the tool-call and reasoning parser plugins (``--tool-parser-plugin``,
``--reasoning-parser-plugin``). A missing, unreadable or broken file, or a parser name the plugin
does not define, raises ``StartupError`` with a message saying which flag and file, so a wrong
ConfigMap mount fails the emulated pod as it would fail a real one.

The template is rendered with ``engine.template.chat_environment`` (transformers' Jinja set-up);
the plugins are checked, not imported -- they import vLLM. Used by ``server``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from nemotron_operator.engine.emulator.flags import EngineFlags
from nemotron_operator.engine.template import chat_environment, render_chat

__all__ = ["LoadedPlugins", "StartupError", "load_plugins"]

# vLLM's own reasoning parsers that read <think>...</think> as the Nemotron models write it.
_BUILTIN_THINK_PARSERS = frozenset({"deepseek_r1", "qwen3"})

ChatRenderer = Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], str]


class StartupError(Exception):
    """The engine cannot start; the message says why."""


@dataclass(frozen=True)
class LoadedPlugins:
    render_chat: ChatRenderer
    template_path: str | None
    parse_tools: bool  # --enable-auto-tool-choice with a loaded parser
    parse_reasoning: bool  # --reasoning-parser given


def _read(flag: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise StartupError(f"{flag} {path}: cannot read the file ({exc.strerror or exc})") from exc


def _template(path: str | None) -> ChatRenderer:
    if path is None:
        # vLLM falls back to the tokenizer's template; ours is the one the emulator ships.
        return lambda messages, tools: render_chat(messages, tools=tools)
    # vLLM accepts the template text itself in place of a path
    text = path if not Path(path).exists() and "{" in path else _read("--chat-template", path)
    try:
        compiled = chat_environment().from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise StartupError(f"--chat-template {path}: not a valid Jinja template: {exc}") from exc

    def render(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return compiled.render(
            messages=messages,
            tools=tools,
            add_generation_prompt=True,
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
        )

    return render


def _plugin_defines(flag: str, path: str, name: str) -> None:
    text = _read(flag, path)
    try:
        compile(text, path, "exec")
    except SyntaxError as exc:
        raise StartupError(f"{flag} {path}: not valid Python: {exc}") from exc
    if not re.search(r"""["']""" + re.escape(name) + r"""["']""", text):
        raise StartupError(f"{flag} {path}: the plugin does not register a parser named {name!r}")


def load_plugins(flags: EngineFlags) -> LoadedPlugins:
    """Everything vLLM checks before it serves; raises ``StartupError``."""
    render = _template(flags.chat_template)
    if flags.tool_parser_plugin:
        if not flags.tool_call_parser:
            _read("--tool-parser-plugin", flags.tool_parser_plugin)
        else:
            _plugin_defines(
                "--tool-parser-plugin", flags.tool_parser_plugin, flags.tool_call_parser
            )
    elif flags.enable_auto_tool_choice:
        raise StartupError(
            f"invalid tool call parser: {flags.tool_call_parser} (the emulator knows only parsers "
            "loaded with --tool-parser-plugin)"
        )
    if flags.reasoning_parser_plugin:
        if flags.reasoning_parser:
            _plugin_defines(
                "--reasoning-parser-plugin", flags.reasoning_parser_plugin, flags.reasoning_parser
            )
        else:
            _read("--reasoning-parser-plugin", flags.reasoning_parser_plugin)
    elif flags.reasoning_parser and flags.reasoning_parser not in _BUILTIN_THINK_PARSERS:
        raise StartupError(
            f"invalid reasoning parser: {flags.reasoning_parser} (load it with "
            f"--reasoning-parser-plugin, or use one of {sorted(_BUILTIN_THINK_PARSERS)})"
        )
    return LoadedPlugins(
        render_chat=render,
        template_path=flags.chat_template,
        parse_tools=flags.enable_auto_tool_choice,
        parse_reasoning=bool(flags.reasoning_parser),
    )

"""OpenAI request parsing for the emulator, as vLLM validates it: a chat or completions body
becomes a ``Job`` (prompt text and its token count, the generation plan, what to parse) or a
``RequestError`` with vLLM's status and message. Pure: ``server`` does the I/O, ``shaping``
builds the responses, ``generation`` plans the output.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nemotron_operator.engine.emulator.generation import (
    GenerationRequest,
    ToolCallPlan,
    arguments_for_schema,
    count_prompt_tokens,
    seed_for,
)

__all__ = [
    "SAMPLING_KEYS",
    "Job",
    "ProtocolContext",
    "RequestError",
    "parse_chat",
    "parse_completion",
    "reasoning_mode",
]

# Request fields reported back in the X-Emulator-Sampling header (those present in the body).
SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "max_completion_tokens",
    "min_tokens",
    "ignore_eos",
    "stop",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logprobs",
    "top_logprobs",
    "include_stop_str_in_output",
    "skip_special_tokens",
)

_MODE = re.compile(r"detailed thinking (on|off)", re.IGNORECASE)


class RequestError(Exception):
    """A request vLLM would refuse: the HTTP status and OpenAI error fields."""

    def __init__(self, message: str, *, status: int = 400, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": None,
                "code": self.status,
            }
        }


@dataclass(frozen=True)
class ProtocolContext:
    """What request parsing needs from the engine's configuration."""

    served_model_names: tuple[str, ...]
    max_model_len: int
    enable_auto_tool_choice: bool
    render_chat: Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], str]


@dataclass(frozen=True)
class Job:
    """One accepted request."""

    chat: bool
    model: str
    prompt_tokens: int
    stream: bool
    include_usage: bool
    generation: GenerationRequest
    sampling: dict[str, Any]
    mode: str  # "on" | "off" | "none": the system prompt's reasoning switch
    tools_requested: bool  # tool calls may come back: run the tool-call parser


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def reasoning_mode(messages: list[dict[str, Any]]) -> str:
    """``on``/``off`` from the system prompt's ``detailed thinking on|off``; ``none`` without."""
    for message in messages:
        if message.get("role") == "system":
            match = _MODE.search(_text_of(message.get("content")))
            if match:
                return match.group(1).lower()
    return "none"


def _check_model(body: dict[str, Any], ctx: ProtocolContext) -> str:
    model = body.get("model")
    if model is None:
        return ctx.served_model_names[0]
    if model not in ctx.served_model_names:
        raise RequestError(f"The model `{model}` does not exist.", status=404, kind="NotFoundError")
    return str(model)


def _int_field(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(f"{key} must be an integer")
    return value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return tuple(stop)
    raise RequestError("stop must be a string or a list of strings")


def _max_tokens(
    body: dict[str, Any], ctx: ProtocolContext, prompt_tokens: int, default: int | None
) -> int:
    requested = _int_field(body, "max_completion_tokens")
    if requested is None:
        requested = _int_field(body, "max_tokens")
    room = ctx.max_model_len - prompt_tokens
    if requested is None:
        requested = room if default is None else default
    if requested < 1:
        raise RequestError(f"max_tokens must be at least 1, got {requested}.")
    if prompt_tokens + requested > ctx.max_model_len:
        raise RequestError(
            f"This model's maximum context length is {ctx.max_model_len} tokens. However, you "
            f"requested {prompt_tokens + requested} tokens ({prompt_tokens} in the messages, "
            f"{requested} in the completion). Please reduce the length of the messages or completion."
        )
    return requested


def _common(body: dict[str, Any]) -> tuple[bool, bool, dict[str, Any]]:
    if _int_field(body, "n") not in (None, 1):
        raise RequestError("the emulator supports n=1 only")
    stream = bool(body.get("stream", False))
    options = body.get("stream_options") or {}
    if options and not stream:
        raise RequestError("Stream options can only be defined when `stream=True`.")
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    sampling = {key: body[key] for key in SAMPLING_KEYS if key in body}
    return stream, include_usage, sampling


def _tool_plans(
    body: dict[str, Any], messages: list[dict[str, Any]], ctx: ProtocolContext, seed: int
) -> tuple[list[dict[str, Any]] | None, tuple[ToolCallPlan, ...], bool]:

    tools = body.get("tools") or None
    choice = body.get("tool_choice", "auto" if tools else "none")
    if tools is None:
        if isinstance(choice, dict) or choice == "required":
            raise RequestError("When using `tool_choice`, `tools` must be set.")
        return None, (), False
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("name")
        for t in tools
    ):
        raise RequestError("tools must be a list of {type: function, function: {name, ...}}")
    functions = {t["function"]["name"]: t["function"] for t in tools}
    if choice == "auto" and not ctx.enable_auto_tool_choice:
        raise RequestError(
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
        )
    if choice == "none":
        return tools, (), False
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str) or name not in functions:
            raise RequestError(f"Tool '{name}' has not been passed in `tools`.")
        wanted = [name]
    else:
        last_user: dict[str, Any] = next(
            (m for m in reversed(messages) if m.get("role") == "user"), {}
        )
        text = _text_of(last_user.get("content"))
        wanted = [name for name in functions if name in text]
        if not wanted and choice == "required":
            wanted = [next(iter(functions))]
    rng = random.Random(seed)
    plans = tuple(
        ToolCallPlan(name, arguments_for_schema(functions[name].get("parameters") or {}, rng) or {})
        for name in wanted
    )
    return tools, plans, True


def parse_chat(body: dict[str, Any], ctx: ProtocolContext) -> Job:
    """Validate a ``/v1/chat/completions`` body and plan its answer."""
    model = _check_model(body, ctx)
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) for m in messages)
    ):
        raise RequestError("messages must be a non-empty list of objects")
    stream, include_usage, sampling = _common(body)
    prompt_seed = seed_for(repr(messages), str(body.get("seed")))
    tools, plans, tools_requested = _tool_plans(body, messages, ctx, prompt_seed)
    try:
        prompt = ctx.render_chat(messages, tools)
    except Exception as exc:  # the template's raise_exception and Jinja errors alike
        raise RequestError(f"chat template error: {exc}") from exc
    prompt_tokens = count_prompt_tokens(prompt)
    mode = reasoning_mode(messages)
    generation = GenerationRequest(
        seed=seed_for(prompt, str(body.get("seed"))),
        max_tokens=_max_tokens(body, ctx, prompt_tokens, None),
        reasoning=mode == "on",
        tool_calls=plans,
        min_tokens=_int_field(body, "min_tokens") or 0,
        ignore_eos=bool(body.get("ignore_eos", False)),
        stop=_stop(body),
        include_stop_str_in_output=bool(body.get("include_stop_str_in_output", False)),
    )
    return Job(
        chat=True,
        model=model,
        prompt_tokens=prompt_tokens,
        stream=stream,
        include_usage=include_usage,
        generation=generation,
        sampling=sampling,
        mode=mode,
        tools_requested=tools_requested,
    )


def parse_completion(body: dict[str, Any], ctx: ProtocolContext) -> Job:
    """Validate a ``/v1/completions`` body (a prompt string, a one-element list, or token ids)."""
    model = _check_model(body, ctx)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        text, prompt_tokens = prompt, count_prompt_tokens(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        text, prompt_tokens = repr(prompt), len(prompt)
    else:
        raise RequestError("prompt must be a string, a list of one string, or a list of token ids")
    stream, include_usage, sampling = _common(body)
    generation = GenerationRequest(
        seed=seed_for(text, str(body.get("seed"))),
        max_tokens=_max_tokens(body, ctx, prompt_tokens, 16),  # vLLM's default for completions
        min_tokens=_int_field(body, "min_tokens") or 0,
        ignore_eos=bool(body.get("ignore_eos", False)),
        stop=_stop(body),
        include_stop_str_in_output=bool(body.get("include_stop_str_in_output", False)),
        short=True,
    )
    return Job(
        chat=False,
        model=model,
        prompt_tokens=prompt_tokens,
        stream=stream,
        include_usage=include_usage,
        generation=generation,
        sampling=sampling,
        mode="none",
        tools_requested=False,
    )

"""Reasoning mode: which pool a request belongs to, and the system prompt that makes the model
agree with that choice. Pure functions over the parsed request body; ``server`` calls
``classify_mode`` then ``with_mode_toggle``; ``policy`` then applies the pool's sampling rules.

Rules (documented in docs/router.md):
1. An explicit choice wins: the request field ``reasoning: "on"|"off"`` (an extra body field),
   else the ``X-Reasoning-Mode: on|off`` header.
2. Else the system prompt's ``detailed thinking on|off`` (chat: the first system message;
   completions: the prompt text).
3. Else the deployment's ``default_mode``.
When the mode did not come from the system prompt (rules 1 and 3), chat requests get a system
prompt that starts with the matching toggle, with the user's own system text kept after a
blank line, so the model and the pool always agree. Completions prompts are raw text and are
never rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from nemotron_operator.router.errors import RouterError

__all__ = [
    "MODE_FIELD",
    "MODE_HEADER",
    "Mode",
    "ModeChoice",
    "classify_mode",
    "system_text",
    "with_mode_toggle",
]

Mode = Literal["on", "off"]
Source = Literal["field", "header", "system", "default"]

MODE_FIELD = "reasoning"
MODE_HEADER = "X-Reasoning-Mode"

_TOGGLE = re.compile(r"detailed\s+thinking\s+(on|off)\b", re.IGNORECASE)
# The toggle plus the blank line (or any whitespace) that separates it from the rest.
_TOGGLE_WITH_SPACE = re.compile(r"\s*detailed\s+thinking\s+(?:on|off)\b[ \t]*\n*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ModeChoice:
    mode: Mode
    source: Source

    @property
    def rewrites_prompt(self) -> bool:
        """The prompt must be made to carry the toggle: the mode did not come from it."""
        return self.source != "system"


def _explicit(value: object, what: str) -> Mode | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("on", "off"):
        mode: Mode = "on" if value.strip().lower() == "on" else "off"
        return mode
    raise RouterError(
        400,
        f"{what} must be 'on' or 'off', got {value!r}",
        code="invalid_reasoning_mode",
        param=MODE_FIELD,
    )


def system_text(body: dict[str, Any]) -> str | None:
    """The text of the first system message (chat) or the prompt (completions), if any."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "system":
                return _content_text(message.get("content"))
        return None
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return str(prompt[0])
    return None


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def classify_mode(body: dict[str, Any], *, header: str | None, default: Mode) -> ModeChoice:
    """Decide the mode of one request (rules in the module docstring)."""
    field_mode = _explicit(body.get(MODE_FIELD), f"the request field {MODE_FIELD!r}")
    if field_mode is not None:
        return ModeChoice(field_mode, "field")
    header_mode = _explicit(header, f"the header {MODE_HEADER}")
    if header_mode is not None:
        return ModeChoice(header_mode, "header")
    text = system_text(body)
    if text:
        found = _TOGGLE.search(text)
        if found is not None:
            mode: Mode = "on" if found.group(1).lower() == "on" else "off"
            return ModeChoice(mode, "system")
    return ModeChoice(default, "default")


def _toggled(text: str, mode: Mode) -> str:
    rest = _TOGGLE_WITH_SPACE.sub("", text, count=1).strip() if _TOGGLE.search(text) else text
    rest = rest.strip()
    toggle = f"detailed thinking {mode}"
    return f"{toggle}\n\n{rest}" if rest else toggle


def with_mode_toggle(body: dict[str, Any], choice: ModeChoice) -> dict[str, Any]:
    """A copy of ``body`` without the ``reasoning`` field and, for chat requests whose mode did
    not come from the system prompt, with a system prompt that opens with the matching toggle.
    """
    out = {k: v for k, v in body.items() if k != MODE_FIELD}
    messages = out.get("messages")
    if not choice.rewrites_prompt or not isinstance(messages, list):
        return out
    new_messages = list(messages)
    for index, message in enumerate(new_messages):
        if isinstance(message, dict) and message.get("role") == "system":
            text = _content_text(message.get("content"))
            new_messages[index] = {**message, "content": _toggled(text, choice.mode)}
            break
    else:
        new_messages.insert(0, {"role": "system", "content": f"detailed thinking {choice.mode}"})
    out["messages"] = new_messages
    return out

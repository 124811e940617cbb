"""Deterministic fake model output: the same request always gives the same tokens.

``plan_generation`` turns what the sampler would be asked (length limits, ``ignore_eos``,
``min_tokens``, stop strings) plus the mode (reasoning on: a ``<think>`` section first; a tool
call: a ``<TOOLCALL>`` block built from the tool's JSON schema) into a list of token texts and a
finish reason. A token is one word-piece (a word with its leading space, or a piece of markup);
prompts are counted at ~4 characters per token (``count_prompt_tokens``). ``server`` releases the
tokens as the timing model produces them and runs the text through the engine's parsers.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHARS_PER_TOKEN",
    "Generation",
    "GenerationRequest",
    "ToolCallPlan",
    "arguments_for_schema",
    "count_prompt_tokens",
    "plan_generation",
    "seed_for",
]

CHARS_PER_TOKEN = 4

_VOCABULARY = (
    "the model considers each step of the problem and checks the result against what the user "
    "asked so the answer stays short clear and correct while the numbers add up and every "
    "assumption is stated first then the method is applied to the data in order to find a value "
    "that fits all of the given facts without guessing beyond them because a careful reader "
    "would verify this later with another example case or a simple test of the final claim"
)
_WORDS = tuple(_VOCABULARY.split())
_THINK_OPENERS = ("Okay,", "Alright,", "Let", "First,", "Hmm,")


def count_prompt_tokens(text: str) -> int:
    """Approximate tokenizer for prompts: one token per ~4 characters, at least one."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def seed_for(*parts: str) -> int:
    """A stable seed from request text (not Python's salted ``hash``)."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class ToolCallPlan:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class GenerationRequest:
    seed: int
    max_tokens: int
    reasoning: bool = False
    tool_calls: tuple[ToolCallPlan, ...] = ()
    min_tokens: int = 0
    ignore_eos: bool = False
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    short: bool = False  # completions: a natural length of a sentence or two


@dataclass(frozen=True)
class Generation:
    pieces: tuple[str, ...]
    finish_reason: str  # "stop" | "length"
    stop_reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


_PIECES = tuple(" " + word for word in _WORDS)


def _words(rng: random.Random, count: int) -> list[str]:
    # one C-level draw for all words: this runs for every request of a benchmark
    out = rng.choices(_PIECES, k=count)
    for i in range(11, count, 12):
        out[i] += "."
    return out


def _chunks(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def arguments_for_schema(schema: Any, rng: random.Random, name: str = "") -> Any:
    """A value that satisfies a (simple) JSON schema: enum -> its first value, string -> a word,
    integer/number -> a small number, boolean -> true, array -> one item, object -> every
    property."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            return {}
        return {key: arguments_for_schema(sub, rng, key) for key, sub in props.items()}
    if kind == "array":
        return [arguments_for_schema(schema.get("items", {"type": "string"}), rng, name)]
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return round(rng.uniform(1, 100), 2)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return rng.choice(_WORDS) if "currency" not in name else rng.choice(("USD", "EUR", "JPY"))


def _natural(request: GenerationRequest, rng: random.Random) -> list[str]:
    pieces: list[str] = []
    if request.reasoning:
        pieces += ["<think>", "\n", rng.choice(_THINK_OPENERS)]
        pieces += _words(rng, rng.randint(60, 400))
        pieces += ["\n", "</think>", "\n\n"]
    if request.tool_calls:
        calls = [{"name": c.name, "arguments": c.arguments} for c in request.tool_calls]
        pieces += ["<TOOLCALL>", *_chunks(json.dumps(calls)), "</TOOLCALL>"]
    else:
        count = rng.randint(8, 40) if request.short else rng.randint(20, 200)
        answer = _words(rng, count)
        answer[0] = answer[0].lstrip()
        pieces += answer
    return pieces


def _apply_stop(
    pieces: list[str], stop: Sequence[str], *, include: bool
) -> tuple[list[str], str] | None:
    text = "".join(pieces)
    hits = [(text.find(s), s) for s in stop if s and s in text]
    if not hits:
        return None
    at, matched = min(hits)
    cut = at + (len(matched) if include else 0)
    kept: list[str] = []
    length = 0
    for piece in pieces:
        # keep the token that contains the stop string (it was generated), trimmed
        if length + len(piece) >= at + len(matched):
            kept.append(piece[: max(0, cut - length)])
            break
        kept.append(piece)
        length += len(piece)
    return kept, matched


def plan_generation(request: GenerationRequest) -> Generation:
    """The whole output for a request, decided up front (it is deterministic anyway)."""
    if request.max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    rng = random.Random(request.seed)
    pieces = _natural(request, rng)
    natural = len(pieces)
    min_tokens = min(request.min_tokens, request.max_tokens)
    if request.ignore_eos or natural > request.max_tokens:
        count, reason = request.max_tokens, "length"
    else:
        count, reason = max(natural, min_tokens), "stop"
    if count > natural:
        # the model would have stopped; min_tokens / ignore_eos keep it talking
        pieces += _words(rng, count - natural)
    pieces = pieces[:count]
    stopped = _apply_stop(pieces, request.stop, include=request.include_stop_str_in_output)
    if stopped is not None:
        return Generation(tuple(stopped[0]), "stop", stopped[1])
    return Generation(tuple(pieces), reason)

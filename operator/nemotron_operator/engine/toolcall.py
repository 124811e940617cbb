"""The pure core of the ``llama_nemotron_json`` tool-call parser: splits model output into plain
content and ``<TOOLCALL>[{"name": ..., "arguments": {...}}, ...]</TOOLCALL>`` calls, whole
(``parse_tool_calls``) or as the text streams in (``ToolCallStream``).

Standard library only, and no import of ``nemotron_operator``: the same file is mounted into vLLM
pods as ``nemotron_toolcall.py`` (``engine/assets/nemotron_toolcall.py`` links here) and imported
by the vLLM plugin ``engine/assets/nemotron_tool_parser.py`` from its own directory. The engine
emulator (``engine.emulator``) uses it directly.

Rules, the same for both entry points:
- A block opens at ``<TOOLCALL>`` and closes at the first ``</TOOLCALL>`` that is not inside a
  JSON string. Every block counts, not only the first; text around blocks is content.
- A block is valid when its text is a JSON list of objects (no key repeated), each with a
  string ``name`` (and ``arguments``, ``{}`` when absent). A call's arguments are the JSON text of its ``arguments``
  value exactly as the model wrote it.
- An invalid block, or one the output never closes (cut by max_tokens), stays in the content
  verbatim, so no character is lost. Streaming cannot take back deltas already sent: it matches
  the whole-text result for every valid output, and for an invalid block only while no part of
  a call has been streamed yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = [
    "CLOSE_TAG",
    "OPEN_TAG",
    "ParsedOutput",
    "StreamDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallStream",
    "parse_tool_calls",
]

OPEN_TAG = "<TOOLCALL>"
CLOSE_TAG = "</TOOLCALL>"
_WHITESPACE = " \t\r\n"
# Nesting depth inside a call object: 1 is the list, 2 the object; a value ends back at 2.
_CALL_DEPTH = 2


@dataclass(frozen=True)
class ToolCall:
    """One call: the function name and its arguments as JSON text."""

    name: str
    arguments: str


@dataclass(frozen=True)
class ParsedOutput:
    """A whole output: the content (``None`` when there is none) and the calls, in order."""

    content: str | None
    tool_calls: list[ToolCall]


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of call number ``index`` (counted over the whole output): ``name`` is set on the
    call's first delta only; ``arguments`` is the next piece of its arguments text."""

    index: int
    name: str | None
    arguments: str


@dataclass(frozen=True)
class StreamDelta:
    """What one ``push`` (or ``finish``) adds: content text and call pieces."""

    content: str
    tool_calls: list[ToolCallDelta]


@dataclass
class _Call:
    name: str | None = None
    arguments: str = ""
    closed: bool = False


@dataclass
class _BlockScanner:
    """Follows the JSON of one block character by character -- string and nesting state, and
    in each top-level object the ``name`` value and the raw text of the ``arguments`` value.
    Tolerant: the whole-text parser checks validity with ``json.loads`` afterwards."""

    calls: list[_Call] = field(default_factory=list)
    depth: int = 0
    in_string: bool = False
    escape: bool = False
    # Inside a call object (depth 2): what the next string is, and the key being read.
    expect_key: bool = True
    key_raw: str = ""
    key: str | None = None
    # The value being read in a call object: "name", "arguments" or "skip"; its raw text.
    value_of: str | None = None
    value_raw: str = ""
    value_scalar: bool = False
    seen_arguments: bool = False

    def feed(self, char: str) -> None:
        """Take the next character of the block's text."""
        if self.in_string:
            self._string_char(char)
            return
        if self.value_of is not None and self.value_scalar:
            if char in _WHITESPACE or char in ",}]":
                self._end_value()
            else:
                self._value_char(char)
                return
        if char == '"':
            self.in_string = True
            self._string_open()
        elif char in "[{":
            self.depth += 1
            if self.depth == 2 and char == "{":
                self.calls.append(_Call())
                self.expect_key, self.key, self.seen_arguments = True, None, False
            elif self.depth > 2 and self.value_of is None and self.key is not None:
                self._start_value(char, scalar=False)
            elif self.value_of is not None:
                self._value_char(char)
        elif char in "]}":
            if self.value_of is not None and self.depth > 2:
                self._value_char(char)
                if self.depth - 1 == _CALL_DEPTH:
                    self._end_value()
            if self.depth == 2 and char == "}" and self.calls:
                call = self.calls[-1]
                if not self.seen_arguments:
                    call.arguments = "{}"
                call.closed = True
            self.depth = max(self.depth - 1, 0)
        elif self.depth == 2 and char == ":":
            self.expect_key = False
        elif self.depth == 2 and char == ",":
            self.expect_key, self.key = True, None
        elif self.depth == 2 and self.key is not None and not self.expect_key:
            if char not in _WHITESPACE:
                self._start_value(char, scalar=True)
        elif self.value_of is not None:
            self._value_char(char)

    def _string_open(self) -> None:
        if self.depth == 2 and self.expect_key:
            self.key_raw = '"'
        elif self.depth == 2 and self.key is not None and self.value_of is None:
            self._start_value('"', scalar=False)
        elif self.value_of is not None:
            self._value_char('"')

    def _string_char(self, char: str) -> None:
        closing = char == '"' and not self.escape
        self.escape = char == "\\" and not self.escape
        if self.depth == 2 and self.expect_key and self.key_raw:
            self.key_raw += char
            if closing:
                key = _decoded(self.key_raw)
                self.key = key if isinstance(key, str) else None
                self.key_raw = ""
        elif self.value_of is not None:
            self._value_char(char)
        if closing:
            self.in_string = False
            if self.value_of is not None and self.depth == _CALL_DEPTH:
                self._end_value()

    def _start_value(self, char: str, *, scalar: bool) -> None:
        if self.key == "arguments":
            self.value_of = "arguments"
            self.seen_arguments = True
        elif self.key == "name":
            self.value_of = "name"
        else:
            self.value_of = "skip"
        self.value_raw = ""
        self.value_scalar = scalar
        self._value_char(char)

    def _value_char(self, char: str) -> None:
        if self.value_of == "arguments" and self.calls:
            self.calls[-1].arguments += char
        elif self.value_of == "name":
            self.value_raw += char  # only a name is decoded; other values need no copy

    def _end_value(self) -> None:
        if self.value_of == "name" and self.calls:
            name = _decoded(self.value_raw)
            self.calls[-1].name = name if isinstance(name, str) else None
        self.value_of, self.value_raw, self.value_scalar = None, "", False
        self.key = None


def _decoded(raw: str) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # A repeated key would let a streaming reader (first name) and json (last name) disagree.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _block_calls(inner: str) -> list[ToolCall] | None:
    """The calls of one closed block, or ``None`` when the block is not a valid call list."""
    try:
        items = json.loads(inner, object_pairs_hook=_unique_keys)
    except ValueError:
        return None
    if not isinstance(items, list):
        return None
    scanner = _BlockScanner()
    for char in inner:
        scanner.feed(char)
    if len(scanner.calls) != len(items):
        return None
    calls = []
    for item, seen in zip(items, scanner.calls, strict=True):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        # The scanner must agree with json (duplicate keys, odd nesting): else not valid.
        if seen.name != item["name"] or _decoded(seen.arguments) != item.get("arguments", {}):
            return None
        if not seen.closed or seen.name is None:
            return None
        calls.append(ToolCall(name=seen.name, arguments=seen.arguments))
    return calls


def _close_at(inner_scanner: _BlockScanner, text: str, start: int) -> tuple[int, bool]:
    """Feeds ``text[start:]`` to the scanner up to the closing tag. Returns the position reached
    and whether the tag starts there (``False``: more text is needed to decide)."""
    i = start
    while i < len(text):
        if not inner_scanner.in_string and text[i] == "<":
            rest = text[i : i + len(CLOSE_TAG)]
            if rest == CLOSE_TAG:
                return i, True
            if CLOSE_TAG.startswith(rest):
                return i, False
        inner_scanner.feed(text[i])
        i += 1
    return i, False


def parse_tool_calls(text: str) -> ParsedOutput:
    """Content and calls of a whole model output (see the module docstring for the rules)."""
    content: list[str] = []
    calls: list[ToolCall] = []
    pos = 0
    while True:
        opened = text.find(OPEN_TAG, pos)
        if opened < 0:
            content.append(text[pos:])
            break
        content.append(text[pos:opened])
        inner_start = opened + len(OPEN_TAG)
        end, closed = _close_at(_BlockScanner(), text, inner_start)
        if not closed:
            content.append(text[opened:])
            break
        block_calls = _block_calls(text[inner_start:end])
        if block_calls is None:
            content.append(text[opened : end + len(CLOSE_TAG)])
        else:
            calls.extend(block_calls)
        pos = end + len(CLOSE_TAG)
    joined = "".join(content)
    return ParsedOutput(content=joined or None, tool_calls=calls)


def _held_prefix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could still grow into ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ToolCallStream:
    """Streams one output: ``push`` each new piece of text, then ``finish`` once. The deltas of
    all calls add up to ``parse_tool_calls`` of the whole text for every valid output, however it
    is cut. A partial ``<TOOLCALL>`` is held back, never sent as content."""

    def __init__(self) -> None:
        self._buffer = ""  # text not yet decided on
        self._block: str | None = None  # raw text of the open block, tags included
        self._scanner = _BlockScanner()
        self._emitted: list[
            tuple[bool, int]
        ] = []  # per call of the open block: name sent, args sent
        self._first_index = 0  # index of the open block's first call
        self._finished = False

    def push(self, delta_text: str) -> StreamDelta:
        """The content and call pieces that ``delta_text`` makes certain."""
        if self._finished:
            raise RuntimeError("push after finish")
        self._buffer += delta_text
        content: list[str] = []
        deltas: list[ToolCallDelta] = []
        while self._buffer:
            if self._block is None:
                opened = self._buffer.find(OPEN_TAG)
                if opened < 0:
                    keep = _held_prefix(self._buffer, OPEN_TAG)
                    content.append(self._buffer[: len(self._buffer) - keep])
                    self._buffer = self._buffer[len(self._buffer) - keep :]
                    break
                content.append(self._buffer[:opened])
                self._block = OPEN_TAG
                self._scanner = _BlockScanner()
                self._emitted = []
                self._buffer = self._buffer[opened + len(OPEN_TAG) :]
                continue
            end, closed = _close_at(self._scanner, self._buffer, 0)
            self._block += self._buffer[:end]
            self._buffer = self._buffer[end:]
            deltas.extend(self._call_deltas())
            if not closed:
                break
            self._buffer = self._buffer[len(CLOSE_TAG) :]
            content.append(self._close_block())
        return StreamDelta(content="".join(content), tool_calls=deltas)

    def finish(self) -> StreamDelta:
        """What is left at the end of the output: held text, or an unclosed block's text when
        none of its calls has been sent yet."""
        if self._finished:
            return StreamDelta(content="", tool_calls=[])
        self._finished = True
        rest, self._buffer = self._buffer, ""
        if self._block is None:
            return StreamDelta(content=rest, tool_calls=[])
        block, self._block = self._block + rest, None
        sent = any(name_sent for name_sent, _ in self._emitted)
        return StreamDelta(content="" if sent else block, tool_calls=[])

    def _call_deltas(self) -> list[ToolCallDelta]:
        deltas = []
        for number, call in enumerate(self._scanner.calls):
            if number == len(self._emitted):
                self._emitted.append((False, 0))
            name_sent, args_sent = self._emitted[number]
            if not name_sent and call.name is None:
                continue
            # Arguments wait for the name; "{}" stands in for absent ones once the call closes.
            new_args = call.arguments[args_sent:]
            if name_sent and not new_args:
                continue
            deltas.append(
                ToolCallDelta(
                    index=self._first_index + number,
                    name=None if name_sent else call.name,
                    arguments=new_args,
                )
            )
            self._emitted[number] = (True, len(call.arguments))
        return deltas

    def _close_block(self) -> str:
        """Ends the open block; returns the content it leaves (its raw text when it was invalid
        and nothing of it was sent)."""
        block = (self._block or "") + CLOSE_TAG
        self._block = None
        inner = block[len(OPEN_TAG) : -len(CLOSE_TAG)]
        valid = _block_calls(inner) is not None
        sent = sum(1 for name_sent, _ in self._emitted if name_sent)
        self._first_index += sent
        if valid or sent:
            return ""
        return block

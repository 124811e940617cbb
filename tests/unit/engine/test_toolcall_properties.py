"""Property tests of the tool-call parser (engine/toolcall.py): for any valid model output and any
way of cutting it into chunks, the streamed deltas add up to exactly the whole-text result; and
for any text at all, whole-text parsing loses no character."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nemotron_operator.engine.toolcall import (
    CLOSE_TAG,
    OPEN_TAG,
    ParsedOutput,
    ToolCall,
    parse_tool_calls,
)

from .test_toolcall import joined, stream_all

# Characters that stress the tag and JSON handling: pieces of the tags, quotes, escapes, brackets.
TRICKY = st.sampled_from(
    [
        "<",
        ">",
        "/",
        "T",
        "O",
        "L",
        "C",
        "A",
        "<TOOLCAL",
        "</TOOLCALL>",
        '"',
        "\\",
        "{",
        "[",
        "]",
        "}",
    ]
)
PLAIN = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
TEXT = st.lists(st.one_of(PLAIN, TRICKY), max_size=8).map("".join)

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), TEXT, st.floats(allow_nan=False))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
WS = st.sampled_from(["", " ", "\n", "  ", "\n\t"])


@st.composite
def json_text(draw: st.DrawFn, value: Any) -> str:
    """``value`` written as a model might: any spacing, ASCII-escaped or not."""
    separators = draw(st.sampled_from([(", ", ": "), (",", ":"), (" , ", " : ")]))
    indent = draw(st.sampled_from([None, None, 2]))
    return json.dumps(value, separators=separators, indent=indent, ensure_ascii=draw(st.booleans()))


@st.composite
def call_object(draw: st.DrawFn) -> tuple[str, ToolCall]:
    name = draw(TEXT.filter(bool))
    name_item = f'{draw(WS)}"name"{draw(WS)}:{draw(WS)}{draw(json_text(name))}{draw(WS)}'
    parts = [name_item]
    arguments = "{}"
    if draw(st.integers(0, 9)):  # now and then a call without arguments
        value = draw(st.dictionaries(TEXT, JSON_VALUES, max_size=3) | JSON_VALUES)
        arguments = draw(json_text(value))
        parts.append(f'{draw(WS)}"arguments"{draw(WS)}:{draw(WS)}{arguments}{draw(WS)}')
        if draw(st.booleans()):
            parts.reverse()
    return "{" + ",".join(parts) + "}", ToolCall(name=name, arguments=arguments)


@st.composite
def valid_output(draw: st.DrawFn) -> tuple[str, ParsedOutput]:
    """A model output with valid blocks between pieces of text, and its expected parse."""
    text_parts: list[str] = []
    calls: list[ToolCall] = []
    pieces: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        before = draw(TEXT)
        objects = draw(st.lists(call_object(), max_size=3))
        block = f"{OPEN_TAG}{draw(WS)}[{','.join(o for o, _ in objects)}]{draw(WS)}{CLOSE_TAG}"
        pieces += [before, block]
        text_parts.append(before)
        calls += [c for _, c in objects]
    after = draw(TEXT)
    pieces.append(after)
    text_parts.append(after)
    text = "".join(pieces)
    content = "".join(text_parts)
    # Text that happens to write a tag itself is no longer the output we meant.
    blocks = len(pieces) // 2
    assume(text.count(OPEN_TAG) == blocks and OPEN_TAG not in content)
    return text, ParsedOutput(content=content or None, tool_calls=calls)


def cut(text: str, points: list[int]) -> list[str]:
    edges = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=400, deadline=None)
@given(output=valid_output(), points=st.lists(st.integers(0, 10_000), max_size=20))
def test_streaming_adds_up_to_the_whole_text_result(
    output: tuple[str, ParsedOutput], points: list[int]
) -> None:
    text, expected = output
    assert parse_tool_calls(text) == expected
    steps, _ = stream_all(cut(text, points))
    assert joined(steps) == expected


@settings(max_examples=100, deadline=None)
@given(output=valid_output())
def test_streaming_one_character_at_a_time(output: tuple[str, ParsedOutput]) -> None:
    text, expected = output
    steps, _ = stream_all(list(text))
    assert joined(steps) == expected


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(TEXT, st.sampled_from([OPEN_TAG, CLOSE_TAG, '[{"name": "f"}]'])), max_size=10
    )
)
def test_no_character_is_lost_from_any_text(pieces: list[str]) -> None:
    text = "".join(pieces)
    parsed = parse_tool_calls(text)
    content = parsed.content or ""
    # Every character of the output is in the content or in a call; calls only come from blocks.
    assert len(content) <= len(text)
    if not parsed.tool_calls and not re.search(r"\[\s*\]", text):
        assert content == text
    for call in parsed.tool_calls:
        json.loads(call.arguments)
    # Streaming agrees whenever no call was started in a block that then failed.
    steps, _ = stream_all(cut(text, [3, 7, 11]))
    streamed = joined(steps)
    if streamed.tool_calls == parsed.tool_calls:
        assert streamed == parsed

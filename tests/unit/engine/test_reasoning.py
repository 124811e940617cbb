"""The pure reasoning splitter (engine/reasoning.py): reasoning on, reasoning off (no tags or an
empty ``<think></think>``), output cut inside the reasoning, and streaming that adds up to the
whole-text split for any text and any cut (hypothesis)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemotron_operator.engine.reasoning import ReasoningStream, answer_started, split_reasoning


def streamed(chunks: list[str]) -> tuple[str | None, str]:
    stream = ReasoningStream()
    pieces = [stream.push(chunk) for chunk in chunks]
    pieces.append(stream.finish())
    reasoning = "".join(r for r, _ in pieces)
    return reasoning or None, "".join(a for _, a in pieces)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # reasoning on, as the model writes it
        ("<think>\nAdd them.\n</think>\n\n4", ("\nAdd them.\n", "4")),
        # reasoning off: no tags at all, the answer verbatim (leading space included)
        ("  4 is the answer.", (None, "  4 is the answer.")),
        # reasoning off with an empty block: no reasoning, and the answer is not swallowed
        ("<think>\n</think>\n\nThe answer is 4.", (None, "The answer is 4.")),
        ("<think></think>4", (None, "4")),
        # cut by max_tokens inside the reasoning: all reasoning, no answer
        ("<think>\nLet me see", ("\nLet me see", "")),
        ("<think>\nLet me see</thi", ("\nLet me see</thi", "")),
        # only the first </think> closes; later tags are answer text
        ("<think>a</think>b</think><think>c", ("a", "b</think><think>c")),
        # a tag that is not at the start is answer text
        ("Answer: <think>x</think>", (None, "Answer: <think>x</think>")),
        # a tool call after reasoning stays in the answer for the tool-call parser
        ("<think>t</think>\n\n<TOOLCALL>[]</TOOLCALL>", ("t", "<TOOLCALL>[]</TOOLCALL>")),
        ("", (None, "")),
        ("<thi", (None, "<thi")),
        ("\n<think>r</think>", ("r", "")),
    ],
)
def test_split(text: str, expected: tuple[str | None, str]) -> None:
    assert split_reasoning(text) == expected
    assert streamed([text]) == expected
    assert streamed(list(text)) == expected


def test_stream_holds_partial_tags_and_leading_whitespace() -> None:
    stream = ReasoningStream()
    assert stream.push("<th") == ("", "")
    assert stream.push("ink>\n") == ("", "")  # whitespace alone may yet be an empty block
    assert not stream.reasoning_ended
    assert stream.push("Hm") == ("\nHm", "")
    assert stream.push(".</thi") == (".", "")
    assert stream.push("nk>\n\n") == ("", "")
    assert stream.reasoning_ended
    assert not stream.answer_begun  # the blank line after </think> is not answer yet
    assert stream.push("Yes") == ("", "Yes")
    assert stream.answer_begun
    assert stream.finish() == ("", "")


def test_stream_passes_reasoning_off_output_straight_through() -> None:
    stream = ReasoningStream()
    assert stream.push("Hi") == ("", "Hi")
    assert stream.reasoning_ended
    assert stream.answer_begun
    assert stream.push(" <think>") == ("", " <think>")


@pytest.mark.parametrize(
    ("text", "started"),
    [
        ("", False),
        ("\n\n", False),
        ("<thi", False),
        ("<think>abc", False),
        ("<think>abc</think>", True),
        ("Hello", True),
        ("<b>", True),
    ],
)
def test_answer_started(text: str, started: bool) -> None:
    assert answer_started(text) is started


TEXT = st.lists(
    st.sampled_from(
        ["<think>", "</think>", "<", "/", "th", "ink", ">", " ", "\n", "a", "é", "<thi"]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=TEXT, points=st.lists(st.integers(0, 200), max_size=10))
def test_streaming_adds_up_to_the_whole_text_split(text: str, points: list[int]) -> None:
    edges = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    chunks = [text[a:b] for a, b in itertools.pairwise(edges)]
    assert streamed(chunks) == split_reasoning(text)


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_reasoning_ended_agrees_with_answer_started(text: str) -> None:
    stream = ReasoningStream()
    stream.push(text)
    assert stream.reasoning_ended is answer_started(text)
    reasoning, answer = split_reasoning(text)
    # Nothing is lost: reasoning and answer come from the text, in order.
    if reasoning is None and not answer_started(text) and "<think>" not in text:
        assert answer == text
    if answer:
        assert text.endswith(answer)


def test_the_mounted_core_is_this_module_and_imports_only_the_standard_library() -> None:
    import ast
    import sys
    from pathlib import Path

    from nemotron_operator.engine import assets, reasoning

    source = Path(reasoning.__file__).read_text(encoding="utf-8")
    assert assets.engine_files()["nemotron_reasoning.py"] == source
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported

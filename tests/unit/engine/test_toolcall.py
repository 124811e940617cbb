"""The pure tool-call parser (engine/toolcall.py): whole-text parsing, with the cases the public
plugin got wrong (several blocks, a missing ``]``, output cut by max_tokens), and streaming."""

from __future__ import annotations

import json

import pytest

from nemotron_operator.engine.toolcall import (
    ParsedOutput,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStream,
    parse_tool_calls,
)


def stream_all(chunks: list[str]) -> tuple[list[StreamDelta], ToolCallStream]:
    stream = ToolCallStream()
    steps = [stream.push(chunk) for chunk in chunks]
    steps.append(stream.finish())
    return steps, stream


def joined(steps: list[StreamDelta]) -> ParsedOutput:
    """The streamed deltas added up the way an OpenAI client adds them up."""
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for step in steps:
        for piece in step.tool_calls:
            if piece.name is not None:
                assert piece.index not in names, "a call's name is sent once"
                names[piece.index] = piece.name
            assert piece.index in names, "arguments come after the name"
            arguments[piece.index] = arguments.get(piece.index, "") + piece.arguments
    content = "".join(step.content for step in steps)
    assert sorted(names) == list(range(len(names))), "indices count from 0 without gaps"
    calls = [ToolCall(name=names[i], arguments=arguments[i]) for i in sorted(names)]
    return ParsedOutput(content=content or None, tool_calls=calls)


def test_plain_text_is_content() -> None:
    assert parse_tool_calls("Hello there.") == ParsedOutput(content="Hello there.", tool_calls=[])


def test_empty_output() -> None:
    assert parse_tool_calls("") == ParsedOutput(content=None, tool_calls=[])


def test_the_model_card_example() -> None:
    text = (
        "<think>\nThe tip is 18% of 100.\n</think>\n\n"
        '<TOOLCALL>[{"name": "calculate_tip", "arguments": {"bill_total": 100, "tip_percentage": 18}}]</TOOLCALL>'
    )
    assert parse_tool_calls(text) == ParsedOutput(
        content="<think>\nThe tip is 18% of 100.\n</think>\n\n",
        tool_calls=[
            ToolCall(name="calculate_tip", arguments='{"bill_total": 100, "tip_percentage": 18}')
        ],
    )


def test_several_calls_in_one_block_and_every_block_counts() -> None:
    text = (
        'A<TOOLCALL>[{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {}}]</TOOLCALL>'
        'B<TOOLCALL>[{"name": "h", "arguments": {"y": [1, {"z": null}]}}]</TOOLCALL>C'
    )
    assert parse_tool_calls(text) == ParsedOutput(
        content="ABC",
        tool_calls=[
            ToolCall("f", '{"x": 1}'),
            ToolCall("g", "{}"),
            ToolCall("h", '{"y": [1, {"z": null}]}'),
        ],
    )


def test_arguments_are_the_json_text_the_model_wrote() -> None:
    text = '<TOOLCALL>[{"arguments":{\n  "a" : "é\\n"\n}, "name":"f"}]</TOOLCALL>'
    (call,) = parse_tool_calls(text).tool_calls
    assert call == ToolCall("f", '{\n  "a" : "é\\n"\n}')
    assert json.loads(call.arguments) == {"a": "é\n"}


def test_absent_arguments_become_an_empty_object() -> None:
    assert parse_tool_calls('<TOOLCALL>[{"name": "now"}]</TOOLCALL>').tool_calls == [
        ToolCall("now", "{}")
    ]


def test_a_close_tag_inside_a_json_string_does_not_end_the_block() -> None:
    text = '<TOOLCALL>[{"name": "echo", "arguments": {"s": "</TOOLCALL> <TOOLCALL>"}}]</TOOLCALL>'
    assert parse_tool_calls(text) == ParsedOutput(
        content=None, tool_calls=[ToolCall("echo", '{"s": "</TOOLCALL> <TOOLCALL>"}')]
    )


def test_empty_call_list_is_no_call_and_no_content() -> None:
    assert parse_tool_calls("x<TOOLCALL>[]</TOOLCALL>") == ParsedOutput(content="x", tool_calls=[])


@pytest.mark.parametrize(
    "text",
    [
        # output cut by max_tokens, at several places
        'Let me call. <TOOLCALL>[{"name": "f", "arguments": {"a": 1',
        'Let me call. <TOOLCALL>[{"name": "f", "arguments": {"a": 1}}]</TOOL',
        "Let me call. <TOOLCALL>",
        "Let me call. <TOOLC",
        # the public plugin's nemesis: a missing ]
        '<TOOLCALL>[{"name": "f", "arguments": {"a": 1}}</TOOLCALL>',
        # not JSON at all, not a list, not objects, a name that is no string
        "<TOOLCALL>call f with a=1</TOOLCALL>",
        '<TOOLCALL>{"name": "f", "arguments": {}}</TOOLCALL>',
        "<TOOLCALL>[1, 2]</TOOLCALL>",
        '<TOOLCALL>[{"name": 7, "arguments": {}}]</TOOLCALL>',
        '<TOOLCALL>[{"arguments": {}}]</TOOLCALL>',
        # a duplicate key: json and a streaming reader would disagree, so it is refused
        '<TOOLCALL>[{"name": "f", "name": "g", "arguments": {}}]</TOOLCALL>',
    ],
)
def test_malformed_or_unclosed_blocks_stay_content_verbatim(text: str) -> None:
    assert parse_tool_calls(text) == ParsedOutput(content=text, tool_calls=[])


def test_a_bad_block_does_not_spoil_a_good_one() -> None:
    good = '<TOOLCALL>[{"name": "f", "arguments": {}}]</TOOLCALL>'
    bad = '<TOOLCALL>[{"name": "g", "arguments": {"a": </TOOLCALL>'
    cut = '<TOOLCALL>[{"name": "h"'
    assert parse_tool_calls(f"1{good}2{bad}3{cut}") == ParsedOutput(
        content=f"12{bad}3{cut}", tool_calls=[ToolCall("f", "{}")]
    )


def test_string_arguments_are_kept_as_their_json_text() -> None:
    (call,) = parse_tool_calls(
        '<TOOLCALL>[{"name": "f", "arguments": "{\\"a\\": 1}"}]</TOOLCALL>'
    ).tool_calls
    assert call.arguments == '"{\\"a\\": 1}"'


def test_scalar_arguments() -> None:
    (call,) = parse_tool_calls('<TOOLCALL>[{"name": "f", "arguments": 12 }]</TOOLCALL>').tool_calls
    assert call.arguments == "12"


def test_stream_sends_the_name_first_then_arguments_piece_by_piece() -> None:
    stream = ToolCallStream()
    assert stream.push("Sure. <TOOL") == StreamDelta(content="Sure. ", tool_calls=[])
    assert stream.push('CALL>[{"name": "get_wea') == StreamDelta(content="", tool_calls=[])
    assert stream.push('ther", "arguments": {"ci') == StreamDelta(
        content="", tool_calls=[ToolCallDelta(index=0, name="get_weather", arguments='{"ci')]
    )
    assert stream.push('ty": "Oslo"}}, {"name": "n') == StreamDelta(
        content="", tool_calls=[ToolCallDelta(index=0, name=None, arguments='ty": "Oslo"}')]
    )
    assert stream.push('ow"}]</TOOLCALL>') == StreamDelta(
        content="", tool_calls=[ToolCallDelta(index=1, name="now", arguments="{}")]
    )
    assert stream.finish() == StreamDelta(content="", tool_calls=[])


def test_stream_never_leaks_a_partial_open_tag() -> None:
    stream = ToolCallStream()
    assert stream.push("a<").content == "a"
    assert stream.push("TOOLCAL").content == ""
    assert stream.push("X").content == "<TOOLCALX"


def test_stream_releases_a_held_tag_prefix_at_the_end() -> None:
    steps, _ = stream_all(["Text <TOOLCA"])
    assert joined(steps) == parse_tool_calls("Text <TOOLCA")


def test_stream_gives_back_an_unclosed_block_before_any_call_was_sent() -> None:
    text = 'Hi <TOOLCALL>[{"name": "f'
    steps, _ = stream_all([text[:5], text[5:]])
    assert joined(steps) == ParsedOutput(content=text, tool_calls=[])


def test_stream_gives_back_an_invalid_block_before_any_call_was_sent() -> None:
    text = "x<TOOLCALL>call f</TOOLCALL>y"
    steps, _ = stream_all(list(text))
    assert joined(steps) == parse_tool_calls(text)


def test_stream_numbers_calls_across_blocks() -> None:
    text = (
        '<TOOLCALL>[{"name": "a", "arguments": {}}]</TOOLCALL>\n'
        '<TOOLCALL>[{"name": "b", "arguments": {}}, {"name": "c", "arguments": {"k": 1}}]</TOOLCALL>'
    )
    steps, _ = stream_all([text])
    assert [(d.index, d.name) for s in steps for d in s.tool_calls] == [
        (0, "a"),
        (1, "b"),
        (2, "c"),
    ]
    assert joined(steps) == parse_tool_calls(text)


def test_push_after_finish_is_refused() -> None:
    stream = ToolCallStream()
    stream.finish()
    with pytest.raises(RuntimeError):
        stream.push("x")
    assert stream.finish() == StreamDelta(content="", tool_calls=[])


def test_the_mounted_core_is_this_module_and_imports_only_the_standard_library() -> None:
    import ast
    import sys
    from pathlib import Path

    from nemotron_operator.engine import assets, toolcall

    source = Path(toolcall.__file__).read_text(encoding="utf-8")
    # One implementation: the file vLLM imports from the ConfigMap is this module's text.
    assert assets.engine_files()["nemotron_toolcall.py"] == source
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported

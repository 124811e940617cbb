"""Our plugins inside vLLM's own serving parser (``ParserManager.get_parser`` -> the composed
reasoning + tool parser the chat endpoint holds per request), with vLLM's request and
response types: non-streaming ``parse`` and streaming ``parse_delta`` fed token by token, with
the prompt rendered by our template. Also: our ``render_chat`` equals transformers'
``apply_chat_template`` with our template, the call vLLM makes to render prompts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nemotron_operator.engine.template import (
    load_template_source,
    render_chat,
    vllm_conversation,
    vllm_tools,
)

TIP_TOOL = {
    "type": "function",
    "function": {
        "name": "calculate_tip",
        "parameters": {
            "type": "object",
            "properties": {
                "bill_total": {"type": "integer"},
                "tip_percentage": {"type": "integer"},
            },
        },
    },
}
MESSAGES = [
    {"role": "system", "content": "detailed thinking on"},
    {"role": "user", "content": "My bill is $100. What will be the amount for 18% tip?"},
]

CALL = '<TOOLCALL>[{"name": "calculate_tip", "arguments": {"bill_total": 100, "tip_percentage": 18}}]</TOOLCALL>'
OUTPUTS = {
    "reasoning then call": f"<think>\nUse calculate_tip.\n</think>\n\n{CALL}",
    "reasoning then answer": "<think>\n18% of 100 is 18.\n</think>\n\nThe tip is $18.",
    "reasoning off": "The tip is $18.",
    "reasoning off, empty block": "<think>\n</think>\n\nThe tip is $18.",
    "call without reasoning": CALL,
    "text, two blocks": (
        'Checking. <TOOLCALL>[{"name": "a", "arguments": {"x": 1}}]</TOOLCALL> and '
        '<TOOLCALL>[{"name": "b", "arguments": {}}, {"name": "c", "arguments": {"s": "é"}}]</TOOLCALL>'
    ),
    "cut inside reasoning": "<think>\nStill thinking about",
    "cut inside a call": '<think>\nok\n</think>\n\n<TOOLCALL>[{"name": "calc',
    # cut while it could still become <think>: vLLM's end-of-stream fallback releases it
    "undecided": "<thi",
}


@pytest.fixture
def parser_cls(serve_args: Any, char_tokenizer: Any) -> Any:
    from vllm.parser.parser_manager import ParserManager

    return ParserManager.get_parser(
        tool_parser_name=serve_args.tool_call_parser,
        reasoning_parser_name=serve_args.reasoning_parser,
        enable_auto_tools=True,
        tokenizer=char_tokenizer,
    )


@pytest.fixture
def request_() -> Any:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    return ChatCompletionRequest(model="nano", messages=MESSAGES, tools=[TIP_TOOL])


def whole(parser_cls: Any, tokenizer: Any, request: Any, text: str) -> dict[str, Any]:
    parser = parser_cls(tokenizer, request.tools)
    reasoning, content, calls = parser.parse(text, request, enable_auto_tools=True)
    return {
        "reasoning": reasoning or "",
        "content": content or "",
        "calls": [(c.name, c.arguments) for c in calls or []],
    }


def streamed(
    parser_cls: Any, tokenizer: Any, request: Any, text: str, *, step: int
) -> dict[str, Any]:
    """``text`` fed to ``parse_delta`` ``step`` tokens at a time, as the chat endpoint does."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionStreamResponse

    parser = parser_cls(tokenizer, request.tools)
    prompt = tokenizer.encode(render_chat(MESSAGES, tools=[TIP_TOOL]), add_special_tokens=False)
    ids = tokenizer.encode(text, add_special_tokens=False)
    reasoning, content = "", ""
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        delta = parser.parse_delta(
            tokenizer.decode(chunk),
            chunk,
            request,
            prompt_token_ids=prompt,
            finished=start + step >= len(ids),
        )
        if delta is None:
            continue
        # Every delta must serialise into vLLM's own stream chunk.
        ChatCompletionStreamResponse.model_validate(
            {
                "model": "nano",
                "choices": [{"index": 0, "delta": delta.model_dump(exclude_none=True)}],
            }
        )
        reasoning += delta.reasoning or ""
        content += delta.content or ""
        for call in delta.tool_calls:
            if call.function and call.function.name:
                assert call.id is not None, "the first piece of a call carries its id"
                names[call.index] = call.function.name
            arguments[call.index] = arguments.get(call.index, "") + (
                (call.function.arguments if call.function else None) or ""
            )
    return {
        "reasoning": reasoning,
        "content": content,
        "calls": [(names[i], arguments.get(i, "")) for i in sorted(names)],
    }


def test_the_model_card_example_non_streaming(
    parser_cls: Any, char_tokenizer: Any, request_: Any
) -> None:
    out = whole(parser_cls, char_tokenizer, request_, OUTPUTS["reasoning then call"])
    assert out == {
        "reasoning": "\nUse calculate_tip.\n",
        "content": "",
        "calls": [("calculate_tip", '{"bill_total": 100, "tip_percentage": 18}')],
    }


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("reasoning then answer", ("\n18% of 100 is 18.\n", "The tip is $18.", [])),
        ("reasoning off", ("", "The tip is $18.", [])),
        ("reasoning off, empty block", ("", "The tip is $18.", [])),
        (
            "call without reasoning",
            ("", "", [("calculate_tip", '{"bill_total": 100, "tip_percentage": 18}')]),
        ),
        (
            "text, two blocks",
            ("", "Checking.  and ", [("a", '{"x": 1}'), ("b", "{}"), ("c", '{"s": "é"}')]),
        ),
        ("cut inside reasoning", ("\nStill thinking about", "", [])),
        ("cut inside a call", ("\nok\n", '<TOOLCALL>[{"name": "calc', [])),
        ("undecided", ("", "<thi", [])),
    ],
)
def test_non_streaming(
    parser_cls: Any,
    char_tokenizer: Any,
    request_: Any,
    case: str,
    expected: tuple[str, str, list[tuple[str, str]]],
) -> None:
    reasoning, content, calls = expected
    assert whole(parser_cls, char_tokenizer, request_, OUTPUTS[case]) == {
        "reasoning": reasoning,
        "content": content,
        "calls": calls,
    }


@pytest.mark.parametrize("case", [c for c in OUTPUTS if c != "cut inside a call"])
@pytest.mark.parametrize("step", [1, 3, 8])
def test_streaming_matches_non_streaming(
    parser_cls: Any, char_tokenizer: Any, request_: Any, case: str, step: int
) -> None:
    text = OUTPUTS[case]
    assert streamed(parser_cls, char_tokenizer, request_, text, step=step) == whole(
        parser_cls, char_tokenizer, request_, text
    )


def test_streamed_arguments_are_json(parser_cls: Any, char_tokenizer: Any, request_: Any) -> None:
    out = streamed(parser_cls, char_tokenizer, request_, OUTPUTS["text, two blocks"], step=2)
    assert [json.loads(arguments) for _, arguments in out["calls"]] == [
        {"x": 1},
        {},
        {"s": "é"},
    ]


def test_token_id_questions(char_tokenizer: Any) -> None:
    from vllm.reasoning import ReasoningParserManager

    parser = ReasoningParserManager.get_reasoning_parser("nemotron_think")(char_tokenizer)
    encode = lambda s: char_tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    prompt = encode(render_chat(MESSAGES))
    assert not parser.is_reasoning_end(prompt), "a rendered prompt leaves room for reasoning"
    assert not parser.is_reasoning_end(encode("<think>\nhmm"))
    assert parser.is_reasoning_end(encode("<think>\nhmm</think>"))
    assert parser.is_reasoning_end(encode("Plain answer"))
    output = encode("<think>ab</think>\n\nYes")
    assert char_tokenizer.decode(parser.extract_content_ids(output)) == "\n\nYes"
    assert parser.count_reasoning_tokens(output) == len(encode("<think>ab</think>"))
    assert parser.extract_content_ids(encode("Plain")) == encode("Plain")
    assert parser.extract_content_ids(encode("<think>still")) == []


@pytest.mark.parametrize(
    ("messages", "tools"),
    [
        ([{"role": "user", "content": "Hi"}], None),
        (MESSAGES, [TIP_TOOL]),
        (
            [
                *MESSAGES,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {
                                "name": "calculate_tip",
                                "arguments": '{"bill_total": 100}',
                            },
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {
                                "name": "calculate_tip",
                                "arguments": {"tip_percentage": 18},
                            },
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "18"},
                {"role": "tool", "tool_call_id": "c2", "content": '{"ok": true}'},
                {"role": "assistant", "content": "The tip is $18."},
                {"role": "user", "content": "Thanks"},
            ],
            [TIP_TOOL],
        ),
    ],
)
def test_render_chat_equals_transformers_apply_chat_template(
    char_tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> None:
    by_transformers = char_tokenizer.apply_chat_template(
        messages,
        tools=tools,
        chat_template=load_template_source(),
        tokenize=False,
        add_generation_prompt=True,
    )
    assert render_chat(messages, tools=tools) == by_transformers


ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
ARGUMENTS = st.dictionaries(ASCII, st.one_of(st.integers(), ASCII, st.lists(ASCII, max_size=2)))


@st.composite
def model_outputs(draw: st.DrawFn) -> str:
    """Reasoning (or none, or an empty block), then text and valid call blocks."""
    head = draw(st.sampled_from(["", "<think>\n</think>\n\n", "<think>\nPlan.\n</think>\n\n"]))
    parts = [head]
    for _ in range(draw(st.integers(0, 2))):
        calls = draw(st.lists(st.tuples(ASCII.filter(bool), ARGUMENTS), min_size=1, max_size=2))
        objects = ", ".join(
            json.dumps({"name": name, "arguments": arguments}) for name, arguments in calls
        )
        parts += [draw(ASCII), f"<TOOLCALL>[{objects}]</TOOLCALL>"]
    parts.append(draw(ASCII))
    text = "".join(parts)
    # Text that writes a tag of its own is not the output meant here.
    assume(text.count("<TOOLCALL>") == (len(parts) - 2) // 2)
    assume("<think>" not in text[len(head) :] and "</think>" not in text[len(head) :])
    return text


def blank_to_empty(out: dict[str, Any]) -> dict[str, Any]:
    # Non-streaming drops content that is only whitespace beside calls; a stream cannot know yet.
    if out["calls"] and not out["content"].strip():
        return {**out, "content": ""}
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=model_outputs(), step=st.integers(1, 12))
def test_streaming_through_vllm_adds_up_for_any_output(
    parser_cls: Any, char_tokenizer: Any, request_: Any, text: str, step: int
) -> None:
    expected = whole(parser_cls, char_tokenizer, request_, text)
    got = streamed(parser_cls, char_tokenizer, request_, text, step=step)
    assert blank_to_empty(got) == expected


HISTORY = [
    {"role": "system", "content": "detailed thinking on"},
    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "oops"}},
            {"id": "c3", "type": "function", "function": {"name": "h", "arguments": ""}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "18"},
    {
        "role": "tool",
        "tool_call_id": "c2",
        "content": [{"type": "text", "text": "p"}, {"type": "text", "text": "q"}],
    },
    {"role": "assistant", "content": "Done.", "tool_calls": []},
]


TOOLS = [
    TIP_TOOL,
    {"type": "function", "function": {"name": "g", "description": "d", "strict": True, "x": 1}},
    {"type": "function", "defer_loading": True, "function": {"name": "h"}},
]


def test_vllm_prompt_equals_render_chat_of_vllm_conversation(char_tokenizer: Any) -> None:
    """vLLM's own message preprocessing, then transformers with our template, as the chat
    endpoint renders a prompt, equals ``render_chat(vllm_conversation(...))``."""
    from types import SimpleNamespace

    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.renderers.chat_utils.chat_message import parse_chat_messages
    from vllm.renderers.hf import _detect_content_format

    template = load_template_source()
    # vLLM picks the content format from the template; vllm_conversation assumes "openai".
    assert _detect_content_format(template, default="string") == "openai"
    # Text-only messages never reach the multimodal parts of the model config.
    model_config = SimpleNamespace(multimodal_config=None, enable_prompt_embeds=False)
    # vLLM rewrites tool-call arguments in the messages it is given, so it gets a copy.
    conversation, _, _ = parse_chat_messages(copy.deepcopy(HISTORY), model_config, "openai")
    assert conversation == vllm_conversation(HISTORY)
    request = ChatCompletionRequest(model="nano", messages=HISTORY, tools=TOOLS)
    tool_dicts = [tool.model_dump() for tool in request.tools]  # as vLLM's chat renderer does
    assert tool_dicts == vllm_tools(TOOLS)
    by_vllm = char_tokenizer.apply_chat_template(
        conversation,
        tools=tool_dicts,
        chat_template=template,
        tokenize=False,
        add_generation_prompt=True,
    )
    assert by_vllm == render_chat(vllm_conversation(HISTORY), tools=vllm_tools(TOOLS))
    assert (
        '<TOOLCALL>[{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {}}' in by_vllm
    )
    assert "<TOOL_RESPONSE>[18, p\nq]</TOOL_RESPONSE>" in by_vllm

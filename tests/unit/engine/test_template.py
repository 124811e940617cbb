"""Golden strings for the mounted chat template (engine/assets/llama_nemotron_nano_tools.jinja)
rendered by ``engine.template.render_chat`` with transformers' Jinja settings."""

from __future__ import annotations

import json
from typing import Any

import jinja2
import pytest

from nemotron_operator.engine import assets
from nemotron_operator.engine.template import (
    chat_environment,
    load_template_source,
    render_chat,
    vllm_conversation,
    vllm_tools,
)

BOT = "<|begin_of_text|>"
EOT = "<|eot_id|>"


def header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


GEN = header("assistant")

TIP_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "calculate_tip",
        "parameters": {
            "type": "object",
            "properties": {
                "bill_total": {"type": "integer"},
                "tip_percentage": {"type": "integer"},
            },
            "required": ["bill_total", "tip_percentage"],
        },
    },
}


def call(name: str, arguments: Any, call_id: str = "call-1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_no_system_message_inserts_reasoning_off() -> None:
    out = render_chat([{"role": "user", "content": "Hi"}])
    assert out == f"{BOT}{header('system')}detailed thinking off{EOT}{header('user')}Hi{EOT}{GEN}"


@pytest.mark.parametrize("system", ["detailed thinking on", "detailed thinking off"])
def test_system_text_is_kept_verbatim(system: str) -> None:
    out = render_chat([{"role": "system", "content": system}, {"role": "user", "content": "2+2?"}])
    assert out == f"{BOT}{header('system')}{system}{EOT}{header('user')}2+2?{EOT}{GEN}"


def test_system_text_keeps_its_whitespace() -> None:
    out = render_chat([{"role": "system", "content": " detailed thinking on\n"}])
    assert out == f"{BOT}{header('system')} detailed thinking on\n{EOT}{GEN}"


def test_without_generation_prompt() -> None:
    out = render_chat([{"role": "user", "content": "Hi"}], add_generation_prompt=False)
    assert out == f"{BOT}{header('system')}detailed thinking off{EOT}{header('user')}Hi{EOT}"


def test_tools_follow_the_system_text() -> None:
    out = render_chat(
        [
            {"role": "system", "content": "detailed thinking on"},
            {"role": "user", "content": "Tip?"},
        ],
        tools=[TIP_TOOL],
    )
    tools_json = (
        '[{"type": "function", "function": {"name": "calculate_tip", "parameters": '
        '{"type": "object", "properties": {"bill_total": {"type": "integer"}, '
        '"tip_percentage": {"type": "integer"}}, "required": ["bill_total", "tip_percentage"]}}}]'
    )
    assert out == (
        f"{BOT}{header('system')}detailed thinking on\n\n<AVAILABLE_TOOLS>{tools_json}"
        f"</AVAILABLE_TOOLS>{EOT}{header('user')}Tip?{EOT}{GEN}"
    )
    # Keys keep the client's order and non-ASCII stays raw, as with transformers' tojson.
    assert json.loads(tools_json) == [TIP_TOOL]


def test_tools_without_system_message() -> None:
    out = render_chat([{"role": "user", "content": "é"}], tools=[{"name": "f"}])
    assert out == (
        f"{BOT}{header('system')}detailed thinking off\n\n"
        f'<AVAILABLE_TOOLS>[{{"name": "f"}}]</AVAILABLE_TOOLS>{EOT}{header("user")}é{EOT}{GEN}'
    )


def test_empty_tool_list_adds_nothing() -> None:
    assert render_chat([{"role": "user", "content": "x"}], tools=[]) == render_chat(
        [{"role": "user", "content": "x"}]
    )


def test_one_tool_call_with_null_content_closes_its_json() -> None:
    out = render_chat(
        [
            {"role": "user", "content": "Tip?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("calculate_tip", '{"bill_total": 100, "tip_percentage": 18}')],
            },
        ],
        add_generation_prompt=False,
    )
    block = '<TOOLCALL>[{"name": "calculate_tip", "arguments": {"bill_total": 100, "tip_percentage": 18}}]</TOOLCALL>'
    assert out.endswith(f"{header('assistant')}{block}{EOT}")
    inner = block.removeprefix("<TOOLCALL>").removesuffix("</TOOLCALL>")
    assert json.loads(inner) == [
        {"name": "calculate_tip", "arguments": {"bill_total": 100, "tip_percentage": 18}}
    ]


def test_content_missing_entirely_renders_as_empty() -> None:
    out = render_chat(
        [{"role": "assistant", "tool_calls": [call("f", {})]}], add_generation_prompt=False
    )
    assert out.endswith(
        f'{header("assistant")}<TOOLCALL>[{{"name": "f", "arguments": {{}}}}]</TOOLCALL>{EOT}'
    )


def test_several_tool_calls_after_content() -> None:
    out = render_chat(
        [
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    call("a", '{"x":1}', "c1"),  # a string goes in as it is
                    call("b", {"y": [1, 2], "z": "ü"}, "c2"),  # an object as JSON
                    {"name": "c", "arguments": {}},  # transformers' flat form
                ],
            }
        ],
        add_generation_prompt=False,
    )
    assert out.endswith(
        f"{header('assistant')}Let me check.<TOOLCALL>["
        '{"name": "a", "arguments": {"x":1}}, '
        '{"name": "b", "arguments": {"y": [1, 2], "z": "ü"}}, '
        '{"name": "c", "arguments": {}}'
        f"]</TOOLCALL>{EOT}"
    )


def test_consecutive_tool_results_merge_into_one_user_turn() -> None:
    out = render_chat(
        [
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("a", "{}"), call("b", "{}")],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"a": 1}'},
            {"role": "tool", "tool_call_id": "c2", "content": "2"},
        ]
    )
    assert out == (
        f"{BOT}{header('system')}detailed thinking off{EOT}{header('user')}Go{EOT}"
        f'{header("assistant")}<TOOLCALL>[{{"name": "a", "arguments": {{}}}}, '
        f'{{"name": "b", "arguments": {{}}}}]</TOOLCALL>{EOT}'
        f'{header("user")}<TOOL_RESPONSE>[{{"a": 1}}, 2]</TOOL_RESPONSE>{EOT}{GEN}'
    )


def test_single_tool_result_and_text_parts() -> None:
    out = render_chat(
        [
            {
                "role": "tool",
                "content": [{"type": "text", "text": "4"}, {"type": "text", "text": "2"}],
            }
        ]
    )
    assert out.endswith(f"{header('user')}<TOOL_RESPONSE>[42]</TOOL_RESPONSE>{EOT}{GEN}")


def test_multi_turn_conversation() -> None:
    out = render_chat(
        [
            {"role": "system", "content": "detailed thinking on"},
            {"role": "user", "content": "Tip on $100 at 18%?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("calculate_tip", {"bill_total": 100, "tip_percentage": 18})],
            },
            {"role": "tool", "content": "18"},
            {"role": "assistant", "content": "The tip is $18."},
            {"role": "user", "content": "Thanks"},
        ],
        tools=[TIP_TOOL],
    )
    expected_tail = (
        f"{header('user')}Tip on $100 at 18%?{EOT}"
        f'{header("assistant")}<TOOLCALL>[{{"name": "calculate_tip", "arguments": '
        f'{{"bill_total": 100, "tip_percentage": 18}}}}]</TOOLCALL>{EOT}'
        f"{header('user')}<TOOL_RESPONSE>[18]</TOOL_RESPONSE>{EOT}"
        f"{header('assistant')}The tip is $18.{EOT}"
        f"{header('user')}Thanks{EOT}{GEN}"
    )
    assert out.startswith(f"{BOT}{header('system')}detailed thinking on\n\n<AVAILABLE_TOOLS>[")
    assert out.endswith(expected_tail)
    assert out.count(BOT) == 1


def test_later_system_message_is_its_own_turn() -> None:
    out = render_chat(
        [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
        add_generation_prompt=False,
    )
    assert out.endswith(f"{header('user')}a{EOT}{header('system')}b{EOT}")


def test_unknown_role_is_refused() -> None:
    with pytest.raises(jinja2.TemplateError, match="unsupported message role: robot"):
        render_chat([{"role": "robot", "content": "beep"}])


def test_image_parts_are_refused() -> None:
    with pytest.raises(jinja2.TemplateError, match="only text"):
        render_chat([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])


def test_environment_matches_transformers_settings() -> None:
    env = chat_environment()
    assert isinstance(env, jinja2.sandbox.ImmutableSandboxedEnvironment)
    assert env.trim_blocks
    assert env.lstrip_blocks
    assert "jinja2.ext.LoopControlExtension" in env.extensions
    assert env.filters["tojson"]({"b": 1, "a": "<é>"}) == '{"b": 1, "a": "<é>"}'
    assert len(env.globals["strftime_now"]("%Y")) == 4
    # The sandbox refuses to mutate what the template is given.
    with pytest.raises(jinja2.exceptions.SecurityError):
        env.from_string("{{ x.append(1) }}").render(x=[])


def test_the_rendered_file_is_the_mounted_one() -> None:
    assert load_template_source() == assets.engine_files()[assets.CHAT_TEMPLATE_FILE]


def test_vllm_conversation_mirrors_vllm_preprocessing() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                call("f", '{"x":1}', "c1"),
                call("g", "not json", "c2"),
                call("h", "[1]", "c3"),
                call("k", {"y": 2}, "c4"),
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
        {"role": "tool", "tool_call_id": "c2", "content": None},
        {"role": "assistant", "content": "ok", "tool_calls": []},
    ]
    converted = vllm_conversation(messages)
    assert converted == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {
            "role": "assistant",
            "content": [],
            "tool_calls": [
                call("f", {"x": 1}, "c1"),
                call("g", {}, "c2"),
                call("h", {}, "c3"),
                call("k", {"y": 2}, "c4"),
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a\nb"},
        {"role": "tool", "tool_call_id": "c2", "content": ""},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    ]
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == '{"x":1}', "input untouched"
    # Object arguments are rendered as JSON, so the history differs from the raw string's spacing.
    assert '{"name": "f", "arguments": {"x": 1}}' in render_chat(converted)
    assert '{"name": "f", "arguments": {"x":1}}' in render_chat(messages)


def test_vllm_tools_mirrors_vllm_request_model_dump() -> None:
    tools = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "g", "description": "d", "strict": True, "x": 1}},
        {"type": "function", "defer_loading": True, "function": {"name": "h"}},
    ]
    assert vllm_tools(tools) == [
        {
            "type": "function",
            "function": {"name": "f", "description": None, "parameters": {"type": "object"}},
        },
        {
            "type": "function",
            "function": {"name": "g", "description": "d", "parameters": None, "strict": True},
        },
        {
            "type": "function",
            "function": {
                "name": "h",
                "description": None,
                "parameters": None,
                "defer_loading": True,
            },
            "defer_loading": True,
        },
    ]
    assert vllm_tools(None) is None
    assert '"description": null' in render_chat([], tools=vllm_tools(tools))

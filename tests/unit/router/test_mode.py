"""Mode classification and the system-prompt toggle (router.mode)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.router.errors import RouterError
from nemotron_operator.router.mode import ModeChoice, classify_mode, system_text, with_mode_toggle

modes = st.sampled_from(["on", "off"])
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


def chat(system: str | None = None, **extra: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": "hi"})
    return {"messages": messages, **extra}


def test_field_beats_header_beats_system_beats_default() -> None:
    body = chat("detailed thinking off", reasoning="on")
    assert classify_mode(body, header="off", default="off") == ModeChoice("on", "field")
    body = chat("detailed thinking off")
    assert classify_mode(body, header="on", default="off") == ModeChoice("on", "header")
    assert classify_mode(body, header=None, default="on") == ModeChoice("off", "system")
    assert classify_mode(chat("be brief"), header=None, default="on") == ModeChoice("on", "default")
    assert classify_mode(chat(), header=None, default="off") == ModeChoice("off", "default")


def test_system_toggle_is_case_insensitive_and_found_in_parts() -> None:
    body = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Detailed Thinking ON"}]},
            {"role": "user", "content": "x"},
        ]
    }
    assert classify_mode(body, header=None, default="off").mode == "on"


def test_completions_prompt_carries_the_toggle() -> None:
    body = {"prompt": "<|start|>system\ndetailed thinking on\n..."}
    assert classify_mode(body, header=None, default="off") == ModeChoice("on", "system")
    assert system_text({"prompt": ["a", "b"]}) == "a"


@pytest.mark.parametrize("bad", ["maybe", 1, True, ""])
def test_invalid_explicit_mode_is_a_400(bad: object) -> None:
    with pytest.raises(RouterError) as info:
        classify_mode(chat(reasoning=bad), header=None, default="off")
    assert info.value.status == 400


def test_invalid_header_is_a_400() -> None:
    with pytest.raises(RouterError):
        classify_mode(chat(), header="yes", default="off")


def test_explicit_mode_rewrites_system_prompt_keeping_user_text() -> None:
    body = chat("detailed thinking off\n\nYou are terse.", reasoning="on")
    out = with_mode_toggle(body, classify_mode(body, header=None, default="off"))
    assert "reasoning" not in out
    assert out["messages"][0] == {
        "role": "system",
        "content": "detailed thinking on\n\nYou are terse.",
    }
    assert body["messages"][0]["content"].startswith("detailed thinking off")  # input untouched


def test_missing_system_prompt_is_added_for_default_mode() -> None:
    body = chat()
    out = with_mode_toggle(body, classify_mode(body, header=None, default="on"))
    assert out["messages"][0] == {"role": "system", "content": "detailed thinking on"}
    assert out["messages"][1:] == body["messages"]


def test_mode_from_system_prompt_leaves_body_alone() -> None:
    body = chat("You are terse. detailed thinking on")
    choice = classify_mode(body, header=None, default="off")
    assert with_mode_toggle(body, choice) == body


def test_completions_prompt_is_never_rewritten() -> None:
    body = {"prompt": "hello", "reasoning": "on"}
    out = with_mode_toggle(body, classify_mode(body, header=None, default="off"))
    assert out == {"prompt": "hello"}


@given(system=st.one_of(st.none(), texts), explicit=modes, default=modes)
def test_after_rewrite_the_prompt_agrees_with_the_pool(
    system: str | None, explicit: str, default: str
) -> None:
    body = chat(system, reasoning=explicit)
    choice = classify_mode(body, header=None, default=default)  # type: ignore[arg-type]
    out = with_mode_toggle(body, choice)
    # Reclassifying the forwarded body without the explicit choice gives the same mode.
    again = classify_mode(out, header=None, default="off" if explicit == "on" else "on")
    assert again.mode == explicit
    assert again.source == "system"
    # The user's own system text survives (minus any toggle it had).
    first = out["messages"][0]["content"]
    assert first.startswith(f"detailed thinking {explicit}")
    if system and "thinking" not in system.lower() and system.strip():
        assert first.endswith(system.strip())
        assert f"detailed thinking {explicit}\n\n" in first

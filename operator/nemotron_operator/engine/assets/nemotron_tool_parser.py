"""vLLM tool-call parser plugin ``llama_nemotron_json`` for Llama-3.1-Nemotron-Nano:
``vllm serve ... --enable-auto-tool-choice --tool-parser-plugin <dir>/nemotron_tool_parser.py
--tool-call-parser llama_nemotron_json``.

A thin adapter: the parsing lives in ``nemotron_toolcall.py`` next to this file (the operator's
``engine/toolcall.py``), imported from this file's own directory because the vLLM image has no
``nemotron_operator`` package -- only the files of the engine ConfigMap. The import shim covers
vLLM's module moves: ``vllm.tool_parsers`` (current) or ``vllm.entrypoints.openai.tool_parsers``
(older); the protocol types from ``vllm.entrypoints.generate.base.protocol`` (0.33) or
``vllm.entrypoints.openai.protocol`` (older). vLLM constructs parsers as ``(tokenizer, tools)``
now and ``(tokenizer)`` in older releases; both work.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

if TYPE_CHECKING:  # the same file, as the operator's package knows it
    from nemotron_operator.engine import toolcall as core
else:
    import nemotron_toolcall as core  # found through _HERE on sys.path

try:
    from vllm.tool_parsers import ToolParser, ToolParserManager
except ImportError:  # vLLM before the tool_parsers package moved up
    from vllm.entrypoints.openai.tool_parsers import (
        ToolParser,
        ToolParserManager,
    )

__all__ = ["NemotronJsonToolParser"]


def _protocol() -> Any:
    for name in (
        "vllm.entrypoints.generate.base.protocol",
        "vllm.entrypoints.openai.engine.protocol",
        "vllm.entrypoints.openai.protocol",
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "DeltaToolCall"):
            return module
    raise ImportError("no vLLM protocol module with DeltaToolCall")


_proto = _protocol()


def _tool_call_id() -> str:
    make = getattr(_proto, "make_tool_call_id", None)
    return str(make()) if make is not None else f"chatcmpl-tool-{uuid.uuid4().hex}"


_ACCEPTS_TOOLS = "tools" in inspect.signature(ToolParser.__init__).parameters


@ToolParserManager.register_module("llama_nemotron_json")
class NemotronJsonToolParser(ToolParser):  # type: ignore[misc]
    """``<TOOLCALL>[{"name": ..., "arguments": {...}}]</TOOLCALL>`` calls, every block, streamed."""

    def __init__(self, tokenizer: Any, tools: list[Any] | None = None) -> None:
        if _ACCEPTS_TOOLS:
            super().__init__(tokenizer, tools)
        else:
            super().__init__(tokenizer)
        self._stream = core.ToolCallStream()
        self._stream_used = False

    def extract_tool_calls(self, model_output: str, request: Any) -> Any:
        parsed = core.parse_tool_calls(model_output)
        calls = [
            _proto.ToolCall(
                id=_tool_call_id(),
                type="function",
                function=_proto.FunctionCall(name=call.name, arguments=call.arguments),
            )
            for call in parsed.tool_calls
        ]
        content = parsed.content
        if calls and content is not None and not content.strip():
            content = None  # the blank line between reasoning and the call is no answer
        return _proto.ExtractedToolCallInformation(
            tools_called=bool(calls), tool_calls=calls, content=content
        )

    def extract_tool_calls_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
        request: Any,
    ) -> Any:
        if not previous_text and self._stream_used:
            self._stream = core.ToolCallStream()  # a new output on a reused parser
        self._stream_used = True
        step = self._stream.push(delta_text)
        deltas = []
        for piece in step.tool_calls:
            first = piece.name is not None
            if first:
                self.prev_tool_call_arr.append({"name": piece.name, "arguments": ""})
                self.streamed_args_for_tool.append("")
                self.current_tool_id = piece.index
                self.current_tool_name_sent = True
            # Kept in step with what was sent, so vLLM's end-of-stream check adds nothing.
            self.prev_tool_call_arr[-1]["arguments"] += piece.arguments
            self.streamed_args_for_tool[-1] += piece.arguments
            deltas.append(
                _proto.DeltaToolCall(
                    index=piece.index,
                    id=_tool_call_id() if first else None,
                    type="function" if first else None,
                    function=_proto.DeltaFunctionCall(
                        name=piece.name, arguments=piece.arguments
                    ).model_dump(exclude_none=True),
                )
            )
        if not step.content and not deltas:
            return None
        return _proto.DeltaMessage(content=step.content or None, tool_calls=deltas)

    def get_remaining_unstreamed_args(self) -> str:
        # Every argument character is streamed as it arrives; nothing is ever left over.
        return ""

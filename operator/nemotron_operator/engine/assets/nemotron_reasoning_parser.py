"""vLLM reasoning parser plugin ``nemotron_think`` for Llama-3.1-Nemotron-Nano:
``vllm serve ... --reasoning-parser-plugin <dir>/nemotron_reasoning_parser.py
--reasoning-parser nemotron_think``.

These models write ``<think>...</think>`` as plain text (several tokens each), so vLLM's
token-id based ``<think>`` parsers cannot load for them. This adapter splits by string with
``nemotron_reasoning.py`` next to this file (the operator's ``engine/reasoning.py``), imported
from this file's own directory since the vLLM image has no ``nemotron_operator`` package. vLLM's
token-id questions (``is_reasoning_end``, ``extract_content_ids``, ``count_reasoning_tokens``)
are answered by decoding the ids with the tokenizer. The import shim covers the older method
names (``extract_reasoning_content*``) and the older ``reasoning_content`` delta field.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from vllm.reasoning import ReasoningParser, ReasoningParserManager

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

if TYPE_CHECKING:  # the same file, as the operator's package knows it
    from nemotron_operator.engine import reasoning as core
else:
    import nemotron_reasoning as core  # found through _HERE on sys.path

__all__ = ["NemotronThinkReasoningParser"]

# The assistant header that ends the rendered prompt; what follows it is model output.
_HEADER_END = "<|end_header_id|>"


def _delta_message() -> Any:
    for name in (
        "vllm.entrypoints.generate.base.protocol",
        "vllm.entrypoints.openai.engine.protocol",
        "vllm.entrypoints.openai.protocol",
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "DeltaMessage"):
            return module.DeltaMessage
    raise ImportError("no vLLM protocol module with DeltaMessage")


_DeltaMessage = _delta_message()
# vLLM renamed the delta's reasoning field from reasoning_content to reasoning.
_REASONING_FIELD = "reasoning" if "reasoning" in _DeltaMessage.model_fields else "reasoning_content"


def _first_index(ids: Sequence[int], holds: Callable[[Sequence[int]], bool]) -> int | None:
    """The smallest ``k`` with ``holds(ids[:k])`` (monotone in ``k``), by bisection; ``None``
    when even all of ``ids`` does not hold."""
    if not holds(ids):
        return None
    low, high = 0, len(ids)
    while low < high:
        middle = (low + high) // 2
        if holds(ids[:middle]):
            high = middle
        else:
            low = middle + 1
    return low


@ReasoningParserManager.register_module("nemotron_think")
class NemotronThinkReasoningParser(ReasoningParser):  # type: ignore[misc]
    """Reasoning between plain-text ``<think>`` and ``</think>``; no tags means no reasoning."""

    def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tokenizer, *args, **kwargs)
        self._stream = core.ReasoningStream()
        self._stream_used = False

    @property
    def reasoning_start_str(self) -> str | None:
        return core.THINK_OPEN

    @property
    def reasoning_end_str(self) -> str | None:
        return core.THINK_CLOSE

    def _text(self, ids: Sequence[int]) -> str:
        return str(self.model_tokenizer.decode(list(ids)))

    def _output_text(self, ids: Sequence[int]) -> str:
        # Called with the rendered prompt too: only the text after its last header counts, and
        # a prompt ending in the assistant header has no output yet (reasoning may follow).
        return self._text(ids).rsplit(_HEADER_END, 1)[-1]

    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        return core.answer_started(self._output_text(input_ids))

    def is_reasoning_end_streaming(
        self, input_ids: Sequence[int], delta_ids: Iterable[int]
    ) -> bool:
        if self._stream_used:
            # vLLM asks right after extract_reasoning_streaming saw the same text, and from then
            # on hands the text to the tool parser directly; so the switch waits until the blank
            # line after </think> (which this parser drops) is behind.
            return self._stream.answer_begun
        return self.is_reasoning_end(input_ids)

    def _content_start(self, ids: Sequence[int]) -> int:
        """Index of the first answer token in output ``ids`` (``len(ids)`` if none yet)."""
        text = self._text(ids)
        if core.answer_started(text) and core.THINK_CLOSE not in text:
            return 0  # no reasoning block: all of it is answer
        end = _first_index(ids, lambda prefix: core.THINK_CLOSE in self._text(prefix))
        return len(ids) if end is None else end

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        return list(input_ids[self._content_start(input_ids) :])

    def count_reasoning_tokens(self, token_ids: Sequence[int]) -> int:
        return self._content_start(token_ids)

    def extract_reasoning(self, model_output: str, request: Any) -> tuple[str | None, str | None]:
        reasoning, answer = core.split_reasoning(model_output)
        return reasoning, answer or None

    def extract_reasoning_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
    ) -> Any:
        if not previous_text and self._stream_used:
            self._stream = core.ReasoningStream()  # a new output on a reused parser
        self._stream_used = True
        reasoning, answer = self._stream.push(delta_text)
        if not reasoning and not answer:
            return None
        return _DeltaMessage(**{_REASONING_FIELD: reasoning or None, "content": answer or None})

    def get_streaming_fallback_content(self, previous_text: str, request: Any) -> str | None:
        """At the end of a stream still undecided (e.g. the whole output is ``<thi``): the text
        held back as a possible tag, when the rules make it answer."""
        _, answer = self._stream.finish()
        return answer or None

    # vLLM releases before the rename call these names.
    extract_reasoning_content = extract_reasoning
    extract_reasoning_content_streaming = extract_reasoning_streaming

"""The pure core of the ``nemotron_think`` reasoning parser: splits model output into reasoning
(the plain-text ``<think>...</think>`` these models write first) and the answer, whole
(``split_reasoning``) or as the text streams in (``ReasoningStream``).

Standard library only, and no import of ``nemotron_operator``: the same file is mounted into vLLM
pods as ``nemotron_reasoning.py`` (``engine/assets/nemotron_reasoning.py`` links here) and
imported by the vLLM plugin ``engine/assets/nemotron_reasoning_parser.py`` from its own
directory. The engine emulator (``engine.emulator``) uses it directly.

Rules, the same for both entry points:
- Output that does not begin (after whitespace) with ``<think>`` is all answer, verbatim: the
  reasoning-off mode writes no tags.
- Otherwise the reasoning is the text up to the first ``</think>``; ``None`` when it is empty or
  only whitespace (reasoning off may write ``<think></think>``). The answer is what follows,
  without its leading whitespace (the model puts a blank line after ``</think>``).
- Output cut before ``</think>`` (max_tokens) is all reasoning and has an empty answer.
"""

from __future__ import annotations

__all__ = ["THINK_CLOSE", "THINK_OPEN", "ReasoningStream", "answer_started", "split_reasoning"]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def split_reasoning(text: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` of a whole output (see the module docstring for the rules)."""
    stripped = text.lstrip()
    if not stripped.startswith(THINK_OPEN):
        return None, text
    body = stripped[len(THINK_OPEN) :]
    closed = body.find(THINK_CLOSE)
    if closed < 0:
        return (body if body.strip() else None), ""
    reasoning = body[:closed]
    answer = body[closed + len(THINK_CLOSE) :].lstrip()
    return (reasoning if reasoning.strip() else None), answer


def answer_started(text: str) -> bool:
    """Whether the answer has begun in output ``text`` so far: ``</think>`` was written, or the
    output does not open with ``<think>`` at all. ``False`` while it could still be either."""
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        return THINK_CLOSE in stripped[len(THINK_OPEN) :]
    return bool(stripped) and not THINK_OPEN.startswith(stripped)


def _held_prefix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could still grow into ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ReasoningStream:
    """Streams one output: ``push`` each new piece of text, then ``finish`` once; each returns
    ``(reasoning_delta, answer_delta)``. The deltas add up to ``split_reasoning`` of the whole
    text however it is cut (``None`` reasoning adds up to ``""``). Partial tags are held back."""

    _START, _REASONING, _ANSWER_LEAD, _ANSWER = range(4)

    def __init__(self) -> None:
        self._state = self._START
        self._buffer = ""
        self._reasoning_started = False  # a non-whitespace reasoning character has been sent

    @property
    def reasoning_ended(self) -> bool:
        """Whether the answer has begun: ``</think>`` was seen, or the output has no reasoning."""
        return self._state in (self._ANSWER_LEAD, self._ANSWER)

    @property
    def answer_begun(self) -> bool:
        """Whether answer text is flowing: like ``reasoning_ended``, but only once something
        other than the whitespace after ``</think>`` has arrived (that whitespace is dropped
        here, so a consumer that switches parsers on this sees only the answer itself)."""
        return self._state == self._ANSWER

    def push(self, delta_text: str) -> tuple[str, str]:
        """The reasoning and answer text that ``delta_text`` makes certain."""
        self._buffer += delta_text
        reasoning: list[str] = []
        answer: list[str] = []
        while self._buffer:
            if self._state == self._START:
                stripped = self._buffer.lstrip()
                if stripped.startswith(THINK_OPEN):
                    self._state = self._REASONING
                    self._buffer = stripped[len(THINK_OPEN) :]
                elif not stripped or THINK_OPEN.startswith(stripped):
                    break
                else:
                    self._state = self._ANSWER
            elif self._state == self._REASONING:
                closed = self._buffer.find(THINK_CLOSE)
                if closed >= 0:
                    reasoning.append(self._reasoning_part(self._buffer[:closed]))
                    self._buffer = self._buffer[closed + len(THINK_CLOSE) :]
                    self._state = self._ANSWER_LEAD
                    continue
                keep = _held_prefix(self._buffer, THINK_CLOSE)
                ready = self._buffer[: len(self._buffer) - keep]
                part = self._reasoning_part(ready)
                reasoning.append(part)
                # Whitespace before the first reasoning character stays held (see _reasoning_part).
                self._buffer = self._buffer[len(part) if part else 0 :]
                if not part:
                    break
            elif self._state == self._ANSWER_LEAD:
                stripped = self._buffer.lstrip()
                self._buffer = stripped
                if stripped:
                    self._state = self._ANSWER
            else:
                answer.append(self._buffer)
                self._buffer = ""
        return "".join(reasoning), "".join(answer)

    def finish(self) -> tuple[str, str]:
        """What is left at the end of the output."""
        rest, self._buffer = self._buffer, ""
        if self._state == self._START:
            self._state = self._ANSWER
            return "", rest
        if self._state == self._REASONING:
            self._state = self._ANSWER
            return self._reasoning_part(rest), ""
        return "", rest if self._state == self._ANSWER else ""

    def _reasoning_part(self, text: str) -> str:
        """``text`` as reasoning to send now. Whitespace before the first visible character is
        held (returns ``""``) until something visible follows, and dropped at the end, so a
        whitespace-only reasoning counts as none."""
        if self._reasoning_started:
            return text
        if text.strip():
            self._reasoning_started = True
            return text
        return ""

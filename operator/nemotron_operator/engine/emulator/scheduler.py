"""Runs the timing model (``timing.BatchModel``) in real time: one asyncio task takes engine
steps, sleeps each step's duration divided by the speed factor, then releases one token to every
sequence of the step through its ``Outbox``. Request handlers in ``server`` wait on their outbox
and send whatever has been released -- several tokens at once when they fall behind, as vLLM's
output collector merges deltas for a slow consumer. When the process itself falls behind real
time (a busy CPU), the loop runs steps back to back without yielding, so the emulated engine
keeps its pace and the handlers send fewer, larger chunks.

Speed 0 turns timing off: every token is released on submission.
"""

from __future__ import annotations

import asyncio
import itertools

from nemotron_operator.engine.emulator.timing import BatchModel

__all__ = ["EngineScheduler", "Outbox"]

# How far the scheduler may fall behind real time and still catch up by running steps back to
# back (beyond this it drops the debt, i.e. the emulated GPU slows down with the CPU).
_MAX_LAG_S = 0.25
# Longest run of back-to-back steps (when behind) before other tasks get the loop.
_MAX_BUSY_S = 0.05


class Outbox:
    """The tokens released to one request so far."""

    __slots__ = ("_waiter", "done", "first_token_at", "released", "seq_id")

    def __init__(self, seq_id: int) -> None:
        self.seq_id = seq_id
        self.released = 0
        self.done = False
        self.first_token_at: float | None = None
        self._waiter: asyncio.Future[None] | None = None

    def release(self, count: int, *, now: float, last: bool) -> None:
        if self.first_token_at is None:
            self.first_token_at = now
        self.released += count
        self.done = self.done or last
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_beyond(self, seen: int) -> None:
        """Return once more than ``seen`` tokens are released (or the output is complete)."""
        while self.released <= seen and not self.done:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None


class EngineScheduler:
    """Owns the batch model and the outboxes of the requests in it."""

    def __init__(self, model: BatchModel, *, speed: float) -> None:
        self.model = model
        self.speed = speed
        self._boxes: dict[int, Outbox] = {}
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self.steps = 0

    def submit(self, *, prompt_tokens: int, output_tokens: int) -> Outbox:
        box = Outbox(next(self._ids))
        if self.speed == 0:
            box.release(output_tokens, now=asyncio.get_running_loop().time(), last=True)
            return box
        self.model.submit(box.seq_id, prompt_tokens=prompt_tokens, output_tokens=output_tokens)
        self._boxes[box.seq_id] = box
        self._wake.set()
        return box

    def cancel(self, box: Outbox) -> None:
        """Forget a request whose client went away (or that finished)."""
        if self._boxes.pop(box.seq_id, None) is not None:
            self.model.cancel(box.seq_id)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = busy_since = loop.time()
        while True:
            step = self.model.step()
            if step is None:
                self._wake.clear()
                await self._wake.wait()
                deadline = loop.time()
                continue
            self.steps += 1
            now = loop.time()
            deadline = max(deadline, now - _MAX_LAG_S) + step.duration_s / self.speed
            if deadline > now:
                await asyncio.sleep(deadline - now)
                now = loop.time()
                busy_since = now
            elif now - busy_since > _MAX_BUSY_S:
                # behind real time: run steps back to back (handlers then send several tokens
                # per write), but let the server breathe now and then
                await asyncio.sleep(0)
                busy_since = now = loop.time()
            finished = set(step.finished)
            for seq_id in step.emitted:
                box = self._boxes.get(seq_id)
                if box is not None:
                    box.release(1, now=now, last=seq_id in finished)
            for seq_id in step.finished:
                self._boxes.pop(seq_id, None)

"""The pure timing model of vLLM's continuous batching, used by the emulator's scheduler.

A ``BatchModel`` holds running and waiting sequences and advances one engine step at a time:
admit waiting sequences first-come first-served while the batch (``max_num_seqs``) and the KV
cache have room, spend the step's token budget (``max_num_batched_tokens``) on one decode token
per running sequence and on (chunked) prefill of newly admitted prompts, and report how long
the step took and which sequences got a token. ``simulate`` replays arrivals through it.

No I/O and no clock: ``scheduler`` turns step durations into real time; ``docs/emulator.md``
explains the default numbers (``TimingParams``) and ``kv_capacity_tokens``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "GIB",
    "Arrival",
    "BatchModel",
    "Completion",
    "Step",
    "TimingParams",
    "kv_capacity_tokens",
    "simulate",
]

GIB = 1024**3


def kv_capacity_tokens(
    *,
    gpu_memory_gib: float,
    gpu_memory_utilization: float,
    weights_gib: float = 8.0,
    overhead_gib: float = 2.0,
    kv_bytes_per_token: int = 128 * 1024,
    tensor_parallel_size: int = 1,
) -> int:
    """Tokens the KV cache holds: (memory vLLM may use - weights - activation/graph overhead)
    / KV bytes per token. Weights and KV heads are split across tensor-parallel GPUs, so the
    free memory of all of them counts. Zero or less means no room for any cache."""
    usable = tensor_parallel_size * (gpu_memory_gib * gpu_memory_utilization - overhead_gib)
    free_bytes = (usable - weights_gib) * GIB
    return max(0, int(free_bytes // kv_bytes_per_token))


@dataclass(frozen=True)
class TimingParams:
    """One engine's costs (seconds of GPU time) and limits; defaults: the 4B on one H100."""

    kv_capacity_tokens: int
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 8192
    prefill_seconds_per_token: float = 20e-6
    decode_step_seconds: float = 5e-3
    decode_seconds_per_seq: float = 30e-6
    decode_seconds_per_context_token: float = 5.6e-8

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1 or self.kv_capacity_tokens < 1:
            raise ValueError("max_num_seqs and kv_capacity_tokens must be positive")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs")


@dataclass
class _Seq:
    seq_id: int
    prompt_tokens: int
    output_tokens: int
    prefilled: int = 0
    generated: int = 0

    @property
    def reserved(self) -> int:
        return self.prompt_tokens + self.output_tokens


@dataclass(frozen=True)
class Step:
    """One engine step: how long it took, who got a token, whose first token it was, who finished."""

    duration_s: float
    emitted: tuple[int, ...]
    first_token: tuple[int, ...]
    finished: tuple[int, ...]
    prefill_tokens: int


class BatchModel:
    """Continuous batching. KV space is reserved for a sequence's whole length (prompt + output)
    when it is admitted -- vLLM allocates blocks as tokens arrive and preempts when it runs out;
    reserving up front gives the same queueing without modelling preemption."""

    def __init__(self, params: TimingParams) -> None:
        self.params = params
        self._waiting: deque[_Seq] = deque()
        self._running: dict[int, _Seq] = {}
        self._known: set[int] = set()  # ids waiting or running
        self._reserved = 0

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def kv_used_tokens(self) -> int:
        return sum(s.prefilled + s.generated for s in self._running.values())

    @property
    def kv_usage(self) -> float:
        """Fraction of the KV cache holding tokens now (vLLM's ``kv_cache_usage_perc``, 0..1)."""
        return self.kv_used_tokens / self.params.kv_capacity_tokens

    @property
    def reserved_tokens(self) -> int:
        return self._reserved

    def idle(self) -> bool:
        return not self._running and not self._waiting

    def submit(self, seq_id: int, *, prompt_tokens: int, output_tokens: int) -> None:
        """Queue a sequence. Raises ``ValueError`` for one that could never fit the KV cache."""
        if prompt_tokens < 1 or output_tokens < 1:
            raise ValueError("a sequence needs at least one prompt and one output token")
        if prompt_tokens + output_tokens > self.params.kv_capacity_tokens:
            raise ValueError("sequence longer than the KV cache")
        if seq_id in self._known:
            raise ValueError(f"sequence {seq_id} already submitted")
        self._known.add(seq_id)
        self._waiting.append(_Seq(seq_id, prompt_tokens, output_tokens))
        # admitted now, it joins the next step: the counts between steps read as vLLM's do
        self._admit()

    def cancel(self, seq_id: int) -> None:
        """Drop a sequence (its client went away), wherever it is; unknown ids are ignored."""
        if seq_id not in self._known:
            return
        self._known.discard(seq_id)
        seq = self._running.pop(seq_id, None)
        if seq is not None:
            self._reserved -= seq.reserved
            self._admit()
            return
        self._waiting = deque(s for s in self._waiting if s.seq_id != seq_id)

    def head_fits(self) -> bool:
        """Whether the first waiting sequence could be admitted now (never, between calls)."""
        if not self._waiting or len(self._running) >= self.params.max_num_seqs:
            return False
        return self._reserved + self._waiting[0].reserved <= self.params.kv_capacity_tokens

    def _admit(self) -> None:
        # Strict FCFS: the head of the queue blocks the rest, as vLLM's scheduler does.
        while self.head_fits():
            head = self._waiting[0]
            self._waiting.popleft()
            self._running[head.seq_id] = head
            self._reserved += head.reserved

    def step(self) -> Step | None:
        """Run one engine step; ``None`` when there is nothing to do."""
        self._admit()
        if not self._running:
            return None
        p = self.params
        budget = p.max_num_batched_tokens
        emitted: list[int] = []
        first: list[int] = []
        context = 0
        decoding = [s for s in self._running.values() if s.prefilled == s.prompt_tokens]
        for seq in decoding:
            context += seq.prompt_tokens + seq.generated
            seq.generated += 1
            emitted.append(seq.seq_id)
        budget -= len(decoding)
        prefill_tokens = 0
        for seq in self._running.values():
            if budget <= 0:
                break
            if seq.prefilled == seq.prompt_tokens:
                continue
            chunk = min(seq.prompt_tokens - seq.prefilled, budget)
            seq.prefilled += chunk
            budget -= chunk
            prefill_tokens += chunk
            if seq.prefilled == seq.prompt_tokens:
                # the step that finishes a prompt samples its first output token
                seq.generated += 1
                emitted.append(seq.seq_id)
                first.append(seq.seq_id)
        finished = [
            i for i in emitted if self._running[i].generated == self._running[i].output_tokens
        ]
        for seq_id in finished:
            self._reserved -= self._running.pop(seq_id).reserved
            self._known.discard(seq_id)
        self._admit()
        duration = (
            p.decode_step_seconds
            + p.decode_seconds_per_seq * len(emitted)
            + p.prefill_seconds_per_token * prefill_tokens
            + p.decode_seconds_per_context_token * context
        )
        return Step(duration, tuple(emitted), tuple(first), tuple(finished), prefill_tokens)


@dataclass(frozen=True)
class Arrival:
    at: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Completion:
    first_token_at: float
    finished_at: float


@dataclass
class _Times:
    first: dict[int, float] = field(default_factory=dict)
    done: dict[int, float] = field(default_factory=dict)


def simulate(params: TimingParams, arrivals: Sequence[Arrival]) -> list[Completion]:
    """Replay arrivals (any order of ``at``; ties keep list order) through a ``BatchModel`` and
    return each one's time of first token and of completion, in the order given."""
    model = BatchModel(params)
    order = sorted(range(len(arrivals)), key=lambda i: (arrivals[i].at, i))
    now = 0.0
    times = _Times()
    nxt = 0
    while nxt < len(order) or not model.idle():
        if model.idle() and nxt < len(order):
            now = max(now, arrivals[order[nxt]].at)
        while nxt < len(order) and arrivals[order[nxt]].at <= now:
            a = arrivals[order[nxt]]
            model.submit(order[nxt], prompt_tokens=a.prompt_tokens, output_tokens=a.output_tokens)
            nxt += 1
        step = model.step()
        if step is None:
            continue
        now += step.duration_s
        for i in step.first_token:
            times.first[i] = now
        for i in step.finished:
            times.done[i] = now
    return [Completion(times.first[i], times.done[i]) for i in range(len(arrivals))]

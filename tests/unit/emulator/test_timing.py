"""The continuous-batching timing model: worked examples and properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemotron_operator.engine.emulator.timing import (
    Arrival,
    BatchModel,
    TimingParams,
    kv_capacity_tokens,
    simulate,
)

PARAMS = TimingParams(kv_capacity_tokens=500_000)


def test_capacity_of_the_4b_on_an_h100() -> None:
    # (80 GiB * 0.95 - 2 GiB overhead - 8 GiB weights) / 128 KiB
    assert kv_capacity_tokens(gpu_memory_gib=80, gpu_memory_utilization=0.95) == 540_672
    assert kv_capacity_tokens(gpu_memory_gib=16, gpu_memory_utilization=0.5) == 0
    two = kv_capacity_tokens(gpu_memory_gib=80, gpu_memory_utilization=0.95, tensor_parallel_size=2)
    assert two > 2 * 540_672  # the weights are paid once across the GPUs


def test_one_request_step_by_step() -> None:
    p = PARAMS
    [done] = simulate(p, [Arrival(0.0, prompt_tokens=1000, output_tokens=3)])
    prefill_step = (
        p.decode_step_seconds + p.decode_seconds_per_seq + 1000 * p.prefill_seconds_per_token
    )
    decode = [
        p.decode_step_seconds + p.decode_seconds_per_seq + ctx * p.decode_seconds_per_context_token
        for ctx in (1001, 1002)
    ]
    assert done.first_token_at == pytest.approx(prefill_step)
    assert done.finished_at == pytest.approx(prefill_step + sum(decode))


def test_long_prompts_are_prefilled_in_chunks_of_the_token_budget() -> None:
    model = BatchModel(TimingParams(kv_capacity_tokens=100_000, max_num_batched_tokens=4096))
    model.submit(1, prompt_tokens=10_000, output_tokens=1)
    steps = []
    while (step := model.step()) is not None:
        steps.append(step)
    assert [s.prefill_tokens for s in steps] == [4096, 4096, 1808]
    assert steps[-1].finished == (1,)


def test_a_full_batch_queues_the_rest() -> None:
    model = BatchModel(TimingParams(kv_capacity_tokens=100_000, max_num_seqs=2))
    for i in range(5):
        model.submit(i, prompt_tokens=10, output_tokens=4)
    model.step()
    assert (model.num_running, model.num_waiting) == (2, 3)


def test_a_full_kv_cache_queues_the_rest() -> None:
    model = BatchModel(TimingParams(kv_capacity_tokens=1000))
    for i in range(3):
        model.submit(i, prompt_tokens=300, output_tokens=100)
    model.step()
    assert (model.num_running, model.num_waiting) == (2, 1)
    assert 0 < model.kv_usage <= 1


def test_a_sequence_longer_than_the_cache_is_refused() -> None:
    model = BatchModel(TimingParams(kv_capacity_tokens=1000))
    with pytest.raises(ValueError, match="longer than the KV cache"):
        model.submit(1, prompt_tokens=900, output_tokens=101)


def test_cancel_frees_the_slot() -> None:
    model = BatchModel(TimingParams(kv_capacity_tokens=1000, max_num_seqs=1))
    model.submit(1, prompt_tokens=10, output_tokens=100)
    model.submit(2, prompt_tokens=10, output_tokens=100)
    model.step()
    model.cancel(1)
    step = model.step()
    assert step is not None
    assert step.first_token == (2,)
    assert model.reserved_tokens == 110


def test_decode_steps_grow_with_the_batch() -> None:
    def one_decode_step(batch: int) -> float:
        model = BatchModel(PARAMS)
        for i in range(batch):
            model.submit(i, prompt_tokens=100, output_tokens=10)
        model.step()  # prefill
        step = model.step()
        assert step is not None
        return step.duration_s

    assert one_decode_step(1) < one_decode_step(64) < one_decode_step(512)


requests = st.lists(
    st.tuples(
        st.floats(0, 2, allow_nan=False),
        st.integers(1, 3000),
        st.integers(1, 300),
    ),
    min_size=1,
    max_size=40,
)
small_params = st.builds(
    TimingParams,
    kv_capacity_tokens=st.integers(3300, 20_000),
    max_num_seqs=st.integers(1, 16),
    max_num_batched_tokens=st.integers(16, 4096),
)


@settings(max_examples=150, deadline=None)
@given(params=small_params, reqs=requests)
def test_every_request_finishes_once_with_all_its_tokens(
    params: TimingParams, reqs: list[tuple[float, int, int]]
) -> None:
    model = BatchModel(params)
    for i, (_, prompt, output) in enumerate(reqs):
        model.submit(i, prompt_tokens=prompt, output_tokens=output)
    tokens = dict.fromkeys(range(len(reqs)), 0)
    finished: list[int] = []
    firsts: list[int] = []
    while (step := model.step()) is not None:
        assert model.num_running <= params.max_num_seqs
        # between steps nothing waits that could run: the batch or the cache is full
        assert not model.head_fits()
        assert model.reserved_tokens <= params.kv_capacity_tokens
        assert step.prefill_tokens <= params.max_num_batched_tokens
        assert step.duration_s > 0
        for i in step.emitted:
            tokens[i] += 1
        firsts += step.first_token
        finished += step.finished
    assert sorted(finished) == list(range(len(reqs)))
    assert sorted(firsts) == list(range(len(reqs)))
    assert tokens == {i: out for i, (_, _, out) in enumerate(reqs)}
    assert model.idle()
    assert model.reserved_tokens == 0


@settings(max_examples=150, deadline=None)
@given(params=small_params, reqs=requests)
def test_first_token_comes_after_arrival_and_before_the_end(
    params: TimingParams, reqs: list[tuple[float, int, int]]
) -> None:
    arrivals = [Arrival(at, prompt, out) for at, prompt, out in reqs]
    for arrival, done in zip(arrivals, simulate(params, arrivals), strict=True):
        assert arrival.at < done.first_token_at <= done.finished_at


@settings(max_examples=150, deadline=None)
@given(
    params=small_params, reqs=requests, extra=st.tuples(st.integers(1, 3000), st.integers(1, 300))
)
def test_more_load_never_makes_earlier_requests_finish_sooner(
    params: TimingParams, reqs: list[tuple[float, int, int]], extra: tuple[int, int]
) -> None:
    base = [Arrival(0.0, prompt, out) for _, prompt, out in reqs]
    alone = simulate(params, base)
    loaded = simulate(params, [*base, Arrival(0.0, *extra)])
    for before, after in zip(alone, loaded, strict=False):
        assert after.first_token_at >= before.first_token_at - 1e-12
        assert after.finished_at >= before.finished_at - 1e-12


@settings(max_examples=100, deadline=None)
@given(reqs=requests)
def test_first_come_first_served_with_one_slot(reqs: list[tuple[float, int, int]]) -> None:
    params = TimingParams(kv_capacity_tokens=10_000, max_num_seqs=1)
    arrivals = [Arrival(0.0, prompt, out) for _, prompt, out in reqs]
    done = simulate(params, arrivals)
    for earlier, later in itertools.pairwise(done):
        assert later.first_token_at > earlier.finished_at - 1e-12

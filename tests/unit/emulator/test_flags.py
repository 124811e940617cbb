"""vLLM's command line as the emulator reads it, and the NEMOTRON_EMULATOR_* knobs."""

from __future__ import annotations

import argparse

import pytest

from nemotron_operator.engine.args import render_vllm_args
from nemotron_operator.engine.emulator.faults import FaultPlan
from nemotron_operator.engine.emulator.flags import (
    DEFAULT_MAX_MODEL_LEN,
    DEFAULT_MAX_NUM_SEQS,
    add_vllm_flags,
    emulator_env,
    engine_flags,
    parse_human_int,
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vllm serve", exit_on_error=False)
    add_vllm_flags(parser)
    return parser.parse_args(argv)


def test_operator_rendered_args_parse() -> None:
    argv = render_vllm_args(
        model="nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1",
        served_model_name="nano",
        max_model_len=65536,
        tensor_parallel_size=1,
        gpu_memory_utilization=0.95,
        tool_calling=True,
        shutdown_timeout=45,
        revision="abc",
    )
    flags = engine_flags(_parse([*argv, "--host", "127.20.0.5"]))
    assert flags.model == "nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1"
    assert flags.served_model_names == ("nano",)
    assert flags.max_model_len == 65536
    assert flags.gpu_memory_utilization == 0.95
    assert flags.shutdown_timeout == 45
    assert flags.enable_auto_tool_choice
    assert flags.tool_call_parser == "llama_nemotron_json"
    assert flags.tool_parser_plugin.endswith("nemotron_tool_parser.py")
    assert flags.reasoning_parser == "nemotron_think"
    assert flags.host == "127.20.0.5"
    assert flags.port == 8000


def test_every_flag_of_the_brief_is_accepted() -> None:
    args = _parse(
        [
            "m",
            "--host", "127.0.0.1", "--port", "9000", "--served-model-name", "a", "b",
            "--max-model-len", "128k", "--gpu-memory-utilization", "0.9",
            "--tensor-parallel-size", "2", "--enable-auto-tool-choice",
            "--tool-call-parser", "p", "--tool-parser-plugin", "/x.py", "--chat-template", "/t",
            "--reasoning-parser", "r", "--reasoning-parser-plugin", "/r.py",
            "--shutdown-timeout", "5", "--max-num-seqs", "64", "--dtype", "bfloat16",
            "--trust-remote-code", "--download-dir", "/d", "--disable-log-requests",
            "--uvicorn-log-level", "warning", "--api-key", "k",
        ]
    )  # fmt: skip
    flags = engine_flags(args)
    assert flags.served_model_names == ("a", "b")
    assert flags.max_model_len == 128000
    assert flags.tensor_parallel_size == 2
    assert flags.max_num_seqs == 64
    assert flags.api_keys == ("k",)
    assert flags.port == 9000


def test_underscore_spelling_is_accepted_like_vllm() -> None:
    assert engine_flags(_parse(["m", "--max_model_len", "4096"])).max_model_len == 4096


def test_defaults_follow_vllm() -> None:
    flags = engine_flags(_parse(["m"]))
    assert flags.served_model_names == ("m",)
    assert flags.max_model_len == DEFAULT_MAX_MODEL_LEN
    assert flags.max_num_seqs == DEFAULT_MAX_NUM_SEQS
    assert flags.port == 8000
    assert flags.shutdown_timeout == 0


def test_batch_defaults_follow_the_gpu_memory_like_vllm() -> None:
    small = engine_flags(_parse(["m"]), gpu_memory_gib=48)
    assert (small.max_num_seqs, small.max_num_batched_tokens) == (256, 2048)
    big = engine_flags(_parse(["m"]), gpu_memory_gib=141)
    assert (big.max_num_seqs, big.max_num_batched_tokens) == (1024, 8192)


def test_unknown_flag_exits_2() -> None:
    parser = argparse.ArgumentParser(prog="vllm serve")
    add_vllm_flags(parser)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["m", "--bogus"])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no model"),
        (["m", "--enable-auto-tool-choice"], "requires --tool-call-parser"),
        (["m", "--max-num-seqs", "9000", "--max-num-batched-tokens", "8192"], "max_num_batched"),
        (["m", "--gpu-memory-utilization", "1.5"], "gpu-memory-utilization"),
    ],
)
def test_invalid_combinations_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        engine_flags(_parse(argv))


def test_max_num_seqs_beyond_the_token_budget_raises_the_budget_when_unset() -> None:
    assert engine_flags(_parse(["m"])).max_num_batched_tokens == 8192
    flags = engine_flags(_parse(["m", "--max-num-seqs", "4096"]))
    assert flags.max_num_batched_tokens == 8192
    big = engine_flags(_parse(["m", "--max-num-seqs", "16384"]))
    assert big.max_num_batched_tokens == 16384


@pytest.mark.parametrize(
    ("text", "value"), [("131072", 131072), ("128k", 128000), ("128K", 131072), ("1.5k", 1500)]
)
def test_human_ints(text: str, value: int) -> None:
    assert parse_human_int(text) == value


def test_emulator_env() -> None:
    env = emulator_env(
        {
            "NEMOTRON_EMULATOR_SPEED": "0",
            "NEMOTRON_EMULATOR_STARTUP_SECONDS": "2.5",
            "NEMOTRON_EMULATOR_FAULTS": "fail:3,die-mid-stream:7",
            "NEMOTRON_EMULATOR_GPU_MEMORY_GIB": "141",
        }
    )
    assert env.speed == 0
    assert env.startup_seconds == 2.5
    assert env.faults == FaultPlan(fail_requests=3, stall=False, die_after_chunks=7)
    assert env.gpu_memory_gib == 141
    assert emulator_env({}).speed == 1.0


@pytest.mark.parametrize(
    "env",
    [
        {"NEMOTRON_EMULATOR_SPEED": "fast"},
        {"NEMOTRON_EMULATOR_SPEED": "-1"},
        {"NEMOTRON_EMULATOR_FAULTS": "explode"},
        {"NEMOTRON_EMULATOR_GPU_MEMORY_GIB": "0"},
    ],
)
def test_bad_env_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"NEMOTRON_EMULATOR|fault"):
        emulator_env(env)

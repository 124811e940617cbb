"""The emulator's configuration: the subset of ``vllm serve``'s command line that the operator
renders (parsed with argparse so an unknown flag exits 2, as vLLM's parser does) and the
emulator-only knobs, which come from environment variables so the vLLM command line stays
identical to the one a real pod runs.

``cli`` adds these flags to its subparser; ``server`` reads ``EngineFlags`` and ``EmulatorEnv``.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from nemotron_operator.engine.emulator.faults import FaultPlan, parse_faults

__all__ = [
    "DEFAULT_MAX_MODEL_LEN",
    "DEFAULT_MAX_NUM_BATCHED_TOKENS",
    "DEFAULT_MAX_NUM_SEQS",
    "EmulatorEnv",
    "EngineFlags",
    "add_vllm_flags",
    "emulator_env",
    "engine_flags",
    "parse_human_int",
]

# The context length in the models' config.json (both Nano models): vLLM's default.
DEFAULT_MAX_MODEL_LEN = 131072
# vLLM's defaults for the OpenAI server (EngineArgs.get_batch_defaults): 1024 sequences and
# 8192 batched tokens on a GPU with >= 70 GiB that is not an A100 (H100, H200), else 256 / 2048.
DEFAULT_MAX_NUM_SEQS = 1024
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192
_SMALL_GPU_MAX_NUM_SEQS = 256
_SMALL_GPU_MAX_NUM_BATCHED_TOKENS = 2048

_HUMAN_INT = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$")
_SUFFIX = {"": 1, "k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2, "g": 1000**3, "G": 1024**3}


def parse_human_int(text: str) -> int:
    """vLLM's reading of ``--max-model-len``: ``131072``, ``128k`` (x1000) or ``128K`` (x1024)."""
    match = _HUMAN_INT.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}")
    return int(float(match.group(1)) * _SUFFIX[match.group(2)])


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs: object) -> None:
    # vLLM's FlexibleArgumentParser accepts --max_model_len as well as --max-model-len.
    names = [name]
    if "_" not in name and name.count("-") > 2:
        names.append("--" + name[2:].replace("-", "_"))
    parser.add_argument(*names, **kwargs)  # type: ignore[arg-type]


def add_vllm_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``vllm serve``'s flags that the emulator understands (or accepts and ignores)."""
    parser.add_argument(
        "model_tag", nargs="?", default=None, help="the model, as vllm serve takes it"
    )
    _flag(parser, "--model", default=None)
    _flag(parser, "--host", default=None)
    _flag(parser, "--port", type=int, default=8000)
    _flag(parser, "--served-model-name", nargs="+", default=None)
    _flag(parser, "--max-model-len", type=parse_human_int, default=None)
    _flag(parser, "--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument(
        "--tensor-parallel-size", "--tensor_parallel_size", "-tp", type=int, default=1
    )
    _flag(parser, "--max-num-seqs", type=int, default=None)
    _flag(parser, "--max-num-batched-tokens", type=int, default=None)
    _flag(parser, "--enable-auto-tool-choice", action="store_true")
    _flag(parser, "--tool-call-parser", default=None)
    _flag(parser, "--tool-parser-plugin", default="")
    _flag(parser, "--chat-template", default=None)
    _flag(parser, "--reasoning-parser", default="")
    _flag(parser, "--reasoning-parser-plugin", default="")
    _flag(parser, "--shutdown-timeout", type=int, default=0)
    _flag(
        parser,
        "--dtype",
        default="auto",
        choices=["auto", "half", "float16", "bfloat16", "float", "float32"],
    )
    _flag(parser, "--trust-remote-code", action="store_true")
    _flag(parser, "--download-dir", default=None)
    _flag(parser, "--disable-log-requests", action="store_true")
    _flag(parser, "--enable-log-requests", action="store_true")
    _flag(
        parser,
        "--uvicorn-log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
    )
    _flag(parser, "--api-key", nargs="+", default=None)
    _flag(parser, "--seed", type=int, default=0)
    _flag(parser, "--revision", default=None)
    _flag(parser, "--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=None)
    _flag(parser, "--enforce-eager", action="store_true")


@dataclass(frozen=True)
class EngineFlags:
    """What the emulator takes from vLLM's command line."""

    model: str
    served_model_names: tuple[str, ...]
    host: str | None
    port: int
    max_model_len: int
    gpu_memory_utilization: float
    tensor_parallel_size: int
    max_num_seqs: int
    max_num_batched_tokens: int
    enable_auto_tool_choice: bool
    tool_call_parser: str | None
    tool_parser_plugin: str
    chat_template: str | None
    reasoning_parser: str
    reasoning_parser_plugin: str
    shutdown_timeout: int
    api_keys: tuple[str, ...]


def engine_flags(args: argparse.Namespace, *, gpu_memory_gib: float = 80.0) -> EngineFlags:
    """Check the parsed flags as vLLM does at start-up; raise ``ValueError`` with vLLM's reason.
    The batch defaults depend on the (emulated) GPU's memory, as vLLM's do."""
    model = args.model_tag or args.model
    if not model:
        raise ValueError("no model given: vllm serve <model> [options]")
    if args.model_tag and args.model and args.model_tag != args.model:
        raise ValueError(f"model given twice: {args.model_tag!r} and --model {args.model!r}")
    if args.enable_auto_tool_choice and not args.tool_call_parser:
        raise ValueError("--enable-auto-tool-choice requires --tool-call-parser to be set")
    if not 0.0 < args.gpu_memory_utilization <= 1.0:
        raise ValueError("--gpu-memory-utilization must be in (0, 1]")
    if args.tensor_parallel_size < 1:
        raise ValueError("--tensor-parallel-size must be at least 1")
    big_gpu = gpu_memory_gib >= 70
    default_seqs = DEFAULT_MAX_NUM_SEQS if big_gpu else _SMALL_GPU_MAX_NUM_SEQS
    default_batched = (
        DEFAULT_MAX_NUM_BATCHED_TOKENS if big_gpu else _SMALL_GPU_MAX_NUM_BATCHED_TOKENS
    )
    max_num_seqs = args.max_num_seqs or default_seqs
    max_model_len = args.max_model_len or DEFAULT_MAX_MODEL_LEN
    # an unset token budget grows to fit a larger --max-num-seqs instead of refusing to start
    batched = args.max_num_batched_tokens or max(default_batched, max_num_seqs)
    if max_num_seqs < 1 or max_model_len < 1:
        raise ValueError("--max-num-seqs and --max-model-len must be positive")
    if batched < max_num_seqs:
        raise ValueError(
            f"max_num_batched_tokens ({batched}) must be greater than or equal to "
            f"max_num_seqs ({max_num_seqs})."
        )
    return EngineFlags(
        model=model,
        served_model_names=tuple(args.served_model_name or [model]),
        host=args.host,
        port=args.port,
        max_model_len=max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        tensor_parallel_size=args.tensor_parallel_size,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=batched,
        enable_auto_tool_choice=args.enable_auto_tool_choice,
        tool_call_parser=args.tool_call_parser,
        tool_parser_plugin=args.tool_parser_plugin,
        chat_template=args.chat_template,
        reasoning_parser=args.reasoning_parser,
        reasoning_parser_plugin=args.reasoning_parser_plugin,
        shutdown_timeout=args.shutdown_timeout,
        api_keys=tuple(args.api_key or ()),
    )


@dataclass(frozen=True)
class EmulatorEnv:
    """Emulator-only knobs (environment variables, documented in docs/emulator.md)."""

    speed: float = 1.0
    startup_seconds: float = 0.0
    faults: FaultPlan = field(default_factory=FaultPlan)
    gpu_memory_gib: float = 80.0


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{name}={text!r} must not be negative")
    return value


def emulator_env(env: Mapping[str, str] | None = None) -> EmulatorEnv:
    """Read ``NEMOTRON_EMULATOR_*``; raise ``ValueError`` for a value that does not parse."""
    env = os.environ if env is None else env
    gpu = _float(env, "NEMOTRON_EMULATOR_GPU_MEMORY_GIB", 80.0)
    if gpu == 0:
        raise ValueError("NEMOTRON_EMULATOR_GPU_MEMORY_GIB must be positive")
    return EmulatorEnv(
        speed=_float(env, "NEMOTRON_EMULATOR_SPEED", 1.0),
        startup_seconds=_float(env, "NEMOTRON_EMULATOR_STARTUP_SECONDS", 0.0),
        faults=parse_faults(env.get("NEMOTRON_EMULATOR_FAULTS", "")),
        gpu_memory_gib=gpu,
    )

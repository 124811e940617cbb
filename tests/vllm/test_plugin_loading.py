"""Both parser plugins load the way ``vllm serve`` loads them, from a directory that holds only
the engine ConfigMap's files, with no ``nemotron_operator`` package anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nemotron_operator.engine.args import render_vllm_args
from nemotron_operator.engine.assets import TOOL_PARSER_NAME

# Runs in a fresh interpreter whose path holds vLLM and nothing of this project.
SERVE_LIKE = textwrap.dedent(
    """
    import importlib.util, json, sys
    from vllm.entrypoints.cli.serve import make_arg_parser
    from vllm.entrypoints.common.cli_args import (
        init_parser_plugin, validate_api_server_args, validate_parsed_serve_args)
    from vllm.parser.parser_manager import ParserManager
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    assert importlib.util.find_spec("nemotron_operator") is None, "operator package is visible"
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(json.loads(sys.argv[1]))
    validate_parsed_serve_args(args)
    init_parser_plugin(args)
    validate_api_server_args(args)
    parser = ParserManager.get_parser(
        tool_parser_name=args.tool_call_parser,
        reasoning_parser_name=args.reasoning_parser,
        enable_auto_tools=args.enable_auto_tool_choice,
    )
    print(json.dumps({
        "tool": parser.tool_parser_cls.__name__,
        "reasoning": parser.reasoning_parser_cls.__name__,
        "tool_module": sys.modules[parser.tool_parser_cls.__module__].__file__,
        "core": sys.modules["nemotron_toolcall"].__file__,
    }))
    """
)


def test_vllm_serve_loads_both_plugins_from_the_mounted_files_alone(
    mount_dir: Path, tmp_path: Path
) -> None:
    argv = render_vllm_args(
        model="nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1",
        served_model_name="nano",
        max_model_len=131072,
        tensor_parallel_size=1,
        gpu_memory_utilization=0.95,
        tool_calling=True,
        shutdown_timeout=30,
        mount_dir=str(mount_dir),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["VLLM_TARGET_DEVICE"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", SERVE_LIKE, json.dumps(argv)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {
        "tool": "NemotronJsonToolParser",
        "reasoning": "NemotronThinkReasoningParser",
        "tool_module": str(mount_dir / "nemotron_tool_parser.py"),
        "core": str(mount_dir / "nemotron_toolcall.py"),
    }


def test_both_names_are_registered(serve_args: Any) -> None:
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager

    assert serve_args.tool_call_parser == TOOL_PARSER_NAME
    assert TOOL_PARSER_NAME in ToolParserManager.list_registered()
    assert "nemotron_think" in ReasoningParserManager.list_registered()


def test_an_unregistered_tool_parser_name_is_refused(serve_args: Any) -> None:
    from vllm.entrypoints.common.cli_args import validate_api_server_args

    serve_args.tool_call_parser = "llama_nemotron_jsn"
    try:
        with pytest.raises(KeyError, match="invalid tool call parser"):
            validate_api_server_args(serve_args)
    finally:
        serve_args.tool_call_parser = TOOL_PARSER_NAME


def test_parsers_construct_as_current_vllm_constructs_them(char_tokenizer: Any) -> None:
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParser, ToolParserManager

    tool_cls = ToolParserManager.get_tool_parser(TOOL_PARSER_NAME)
    assert issubclass(tool_cls, ToolParser)
    tools: list[Any] = []
    assert tool_cls(char_tokenizer, tools).model_tokenizer is char_tokenizer
    assert tool_cls(char_tokenizer).model_tokenizer is char_tokenizer  # older vLLM's call
    reasoning = ReasoningParserManager.get_reasoning_parser("nemotron_think")(char_tokenizer)
    assert reasoning.reasoning_end_str == "</think>"

"""The ``vllm serve`` arguments the operator renders (``engine.args.render_vllm_args``) parsed by
vLLM's own CLI parser, for both presets: a misspelt, removed or mistyped flag fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nemotron_operator.api.presets import PRESETS
from nemotron_operator.engine.args import render_vllm_args
from nemotron_operator.engine.assets import (
    CHAT_TEMPLATE_FILE,
    ENGINE_MOUNT_DIR,
    REASONING_PARSER_FILE,
    REASONING_PARSER_NAME,
    TOOL_PARSER_FILE,
    TOOL_PARSER_NAME,
)


def vllm_parse(argv: list[str]) -> Any:
    from vllm.entrypoints.cli.serve import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser()).parse_args(argv)


def preset_args(name: str, **overrides: Any) -> list[str]:
    preset = PRESETS[name]
    values: dict[str, Any] = {
        "model": preset.hugging_face_id,
        "served_model_name": preset.served_model_name,
        "max_model_len": preset.max_model_len,
        "tensor_parallel_size": preset.default_gpus,
        "gpu_memory_utilization": preset.gpu_memory_utilization,
        "tool_calling": True,
        "shutdown_timeout": 45,
    }
    values.update(overrides)
    return render_vllm_args(**values)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_args_parse_with_the_values_meant(name: str) -> None:
    preset = PRESETS[name]
    args = vllm_parse(preset_args(name, extra_args=["--enforce-eager"]))
    assert args.model_tag == preset.hugging_face_id
    assert args.served_model_name == [preset.served_model_name]
    assert args.max_model_len == preset.max_model_len
    assert args.tensor_parallel_size == preset.default_gpus
    assert args.gpu_memory_utilization == pytest.approx(preset.gpu_memory_utilization)
    assert args.port == 8000
    assert args.enable_auto_tool_choice is True
    assert args.tool_parser_plugin == f"{ENGINE_MOUNT_DIR}/{TOOL_PARSER_FILE}"
    assert args.tool_call_parser == TOOL_PARSER_NAME
    assert args.reasoning_parser_plugin == f"{ENGINE_MOUNT_DIR}/{REASONING_PARSER_FILE}"
    assert args.reasoning_parser == REASONING_PARSER_NAME
    assert args.chat_template == f"{ENGINE_MOUNT_DIR}/{CHAT_TEMPLATE_FILE}"
    assert args.shutdown_timeout == 45
    assert args.enforce_eager is True


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_args_pass_vllm_serve_validation(name: str, mount_dir: Path) -> None:
    from vllm.entrypoints.common.cli_args import validate_parsed_serve_args

    # validate_parsed_serve_args checks that the chat template file exists, so point at files.
    args = vllm_parse(preset_args(name, mount_dir=str(mount_dir), revision="main"))
    validate_parsed_serve_args(args)
    assert args.revision == "main"


def test_args_without_tool_calling_parse() -> None:
    args = vllm_parse(preset_args("nano-4b-v1.1", tool_calling=False, max_model_len=None))
    assert args.enable_auto_tool_choice is False
    assert args.max_model_len is None


def test_an_unknown_flag_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        vllm_parse(preset_args("nano-8b-v1", extra_args=["--tool-parser-plugins", "x.py"]))
    assert exited.value.code == 2
    assert "--tool-parser-plugins" in capsys.readouterr().err


def test_a_bad_value_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        vllm_parse(preset_args("nano-4b-v1.1", extra_args=["--max-num-seqs", "many"]))
    assert exited.value.code == 2
    assert "--max-num-seqs" in capsys.readouterr().err

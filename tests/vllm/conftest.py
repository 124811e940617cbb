"""Fixtures for the tier that runs against the real ``vllm`` package (scripts/test-vllm runs it
with the venv that scripts/vllm-venv builds). Everywhere else the tier is skipped, with a reason.

``VLLM_TARGET_DEVICE=cpu`` is set before vLLM is imported: without it vLLM cannot infer a device
on a machine without a GPU and its parsers fail to import.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="needs the real vllm package: run scripts/test-vllm")
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.vllm)
            if not HAVE_VLLM:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def mount_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine ConfigMap's files, written out as the pod's mount would hold them."""
    from nemotron_operator.engine.assets import engine_files

    folder = tmp_path_factory.mktemp("engine-mount")
    for name, text in engine_files().items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def char_tokenizer() -> Any:
    """A Hugging Face fast tokenizer with one token per character, so ``<think>`` and
    ``<TOOLCALL>`` are several tokens each, as they are for the Nemotron tokenizer."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n", "\t", "é", "ü", "<unk>"]
    model = models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[], unk_token="<unk>")
    tokenizer = Tokenizer(model)
    tokenizer.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>")


@pytest.fixture(scope="session")
def serve_args(mount_dir: Path) -> Any:
    """``vllm serve`` arguments naming both plugins and the template in ``mount_dir``, parsed,
    validated and with the plugins loaded, as ``vllm serve`` does before it starts the server."""
    from vllm.entrypoints.cli.serve import make_arg_parser
    from vllm.entrypoints.common.cli_args import (
        init_parser_plugin,
        validate_api_server_args,
        validate_parsed_serve_args,
    )
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from nemotron_operator.engine.args import render_vllm_args

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
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    validate_parsed_serve_args(args)
    init_parser_plugin(args)
    validate_api_server_args(args)
    return args

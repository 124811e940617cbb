"""The ``vllm serve`` argument list of an engine pod, rendered from plain values.

The controller (``controller.engine_pool``) calls ``render_vllm_args`` with values it resolved
from a NemotronDeployment; the pod runner's engine emulator parses the same list, and the
engine tests feed it to vLLM's real CLI parser. File paths point into ``ENGINE_MOUNT_DIR``,
where the ``<name>-engine`` ConfigMap (``engine.assets.engine_files()``) is mounted. Every flag
rendered here is listed in ``api.managed_flags`` so that ``engineArgs`` cannot set it twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from nemotron_operator.engine.assets import (
    CHAT_TEMPLATE_FILE,
    ENGINE_MOUNT_DIR,
    REASONING_PARSER_FILE,
    REASONING_PARSER_NAME,
    TOOL_PARSER_FILE,
    TOOL_PARSER_NAME,
)

__all__ = ["ENGINE_PORT", "render_vllm_args"]

ENGINE_PORT = 8000


def render_vllm_args(
    *,
    model: str,
    served_model_name: str,
    max_model_len: int | None,
    tensor_parallel_size: int,
    gpu_memory_utilization: float,
    tool_calling: bool,
    shutdown_timeout: int,
    extra_args: Sequence[str] = (),
    revision: str | None = None,
    reasoning_parser: bool = True,
    chat_template: bool = True,
    mount_dir: str = ENGINE_MOUNT_DIR,
    port: int = ENGINE_PORT,
) -> list[str]:
    """``[model, --flag, value, ...]``: the container args after ``vllm serve``.

    ``max_model_len=None`` leaves the length to the model's config. ``extra_args`` come last,
    verbatim (the API refuses managed flags in them). ``reasoning_parser``/``chat_template``
    say whether those files are in the ConfigMap.
    """
    args = [
        model,
        "--served-model-name",
        served_model_name,
        "--port",
        str(port),
        "--tensor-parallel-size",
        str(tensor_parallel_size),
        "--gpu-memory-utilization",
        _number(gpu_memory_utilization),
    ]
    if revision is not None:
        args += ["--revision", revision]
    if max_model_len is not None:
        args += ["--max-model-len", str(max_model_len)]
    if chat_template:
        # The template also carries the tools block and fixes of the public one, so it is
        # mounted with or without tool calling.
        args += ["--chat-template", f"{mount_dir}/{CHAT_TEMPLATE_FILE}"]
    if tool_calling:
        args += [
            "--enable-auto-tool-choice",
            "--tool-parser-plugin",
            f"{mount_dir}/{TOOL_PARSER_FILE}",
            "--tool-call-parser",
            TOOL_PARSER_NAME,
        ]
    if reasoning_parser:
        args += [
            "--reasoning-parser-plugin",
            f"{mount_dir}/{REASONING_PARSER_FILE}",
            "--reasoning-parser",
            REASONING_PARSER_NAME,
        ]
    args += ["--shutdown-timeout", str(shutdown_timeout)]
    args += list(extra_args)
    return args


def _number(value: float) -> str:
    """A float as vLLM's parser expects it, without binary noise (0.95, not 0.9500000001)."""
    return f"{value:.6g}"

"""The vLLM flags the operator renders itself (``engine.args``) and therefore refuses in a
pool's ``engineArgs``.

Used by ``api.models`` (a pydantic validator) and ``api.crd`` (the same rule as a CEL
expression, so the apiserver refuses such a CR at apply time with the same message).
"""

from __future__ import annotations

import re

__all__ = ["MANAGED_FLAGS", "managed_flag_message", "managed_flag_regex", "managed_flags_in"]

# Every flag ``engine.args.render_vllm_args`` may emit, plus the ones the pod itself fixes
# (host, port, the model positional given as a flag). Sorted for a stable CRD.
MANAGED_FLAGS: tuple[str, ...] = tuple(
    sorted(
        {
            "--chat-template",
            "--enable-auto-tool-choice",
            "--gpu-memory-utilization",
            "--host",
            "--max-model-len",
            "--model",
            "--port",
            "--reasoning-parser",
            "--reasoning-parser-plugin",
            "--revision",
            "--served-model-name",
            "--shutdown-timeout",
            "--tensor-parallel-size",
            "--tool-call-parser",
            "--tool-parser-plugin",
            "--download-dir",
            "-tp",
        }
    )
)


def managed_flag_regex() -> str:
    """An RE2-compatible regex matching one argv item that sets a managed flag (``--x`` or ``--x=v``)."""
    # Flags hold only letters and '-', which are literal in a regex outside a class, so no
    # escaping is needed (and a backslash would be an invalid escape in a CEL string).
    assert all(re.fullmatch(r"-[-a-z]+", flag) for flag in MANAGED_FLAGS)
    alternatives = "|".join(MANAGED_FLAGS)
    # (?s): a value may hold a newline and still sets the flag.
    return f"(?s)^({alternatives})(=.*)?$"


def managed_flag_message() -> str:
    """The message shown when ``engineArgs`` sets a managed flag (apiserver and pydantic alike)."""
    return (
        "engineArgs must not set flags the operator manages ("
        + ", ".join(MANAGED_FLAGS)
        + "); use the matching spec field instead"
    )


_PATTERN = re.compile(managed_flag_regex())


def managed_flags_in(args: list[str] | tuple[str, ...]) -> list[str]:
    """The items of ``args`` that set a managed flag, in order."""
    return [arg for arg in args if _PATTERN.fullmatch(arg)]

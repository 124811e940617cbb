"""vLLM argument rendering (engine.args) as the controller uses it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.api.managed_flags import managed_flags_in
from nemotron_operator.engine.args import render_vllm_args


@given(
    max_model_len=st.none() | st.integers(256, 131072),
    tp=st.integers(1, 8),
    util=st.floats(0.05, 1.0),
    tools=st.booleans(),
    shutdown=st.integers(0, 600),
)
def test_every_rendered_flag_is_managed(
    max_model_len: int | None, tp: int, util: float, tools: bool, shutdown: int
) -> None:
    args = render_vllm_args(
        model="org/m",
        served_model_name="m",
        max_model_len=max_model_len,
        tensor_parallel_size=tp,
        gpu_memory_utilization=util,
        tool_calling=tools,
        shutdown_timeout=shutdown,
        extra_args=["--enforce-eager"],
        revision="r1",
    )
    assert args[0] == "org/m"
    flags = [a for a in args[1:] if a.startswith("-")]
    # Everything the operator renders is refused in engineArgs; the extra flag is not.
    assert managed_flags_in(flags) == flags[:-1]
    assert args[-1] == "--enforce-eager"
    assert ("--enable-auto-tool-choice" in args) == tools
    assert float(args[args.index("--gpu-memory-utilization") + 1]) == float(f"{util:.6g}")

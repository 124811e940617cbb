"""``nemotron-operator emulate-engine <model> [vllm serve flags]``: the engine emulator's
command. It takes ``vllm serve``'s command line (``flags``), reads its own knobs from
``NEMOTRON_EMULATOR_*`` environment variables, loads the mounted template and parser plugins
(``plugins``) and runs the server (``server``). A start-up failure exits 1 with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from nemotron_operator.engine.emulator.flags import add_vllm_flags, emulator_env, engine_flags
from nemotron_operator.engine.emulator.plugins import StartupError, load_plugins
from nemotron_operator.engine.emulator.server import serve

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "emulate-engine",
        help="run the vLLM engine emulator (takes vllm serve's flags)",
        description="Emulate `vllm serve <model> [flags]` without a GPU; see docs/emulator.md.",
    )
    add_vllm_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        env = emulator_env()
        flags = engine_flags(args, gpu_memory_gib=env.gpu_memory_gib)
        plugins = load_plugins(flags)
    except (ValueError, StartupError) as exc:
        print(f"emulate-engine: error: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(serve(flags, env, plugins))
    except StartupError as exc:
        print(f"emulate-engine: error: {exc}", file=sys.stderr)
        return 1

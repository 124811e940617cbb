"""The ``nemotron-operator`` command line: one subcommand per part of the product.

Each part registers its own subcommand through a ``register(subparsers)`` function in its
package's ``cli`` module; this module only lists them, so importing the command does not
import every part (the router pod does not need kopf, the emulator does not need kubernetes).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

# subcommand -> module with ``register(subparsers)``; the module is imported only when the
# subcommand is listed or used.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "devcluster": ("nemotron_operator.devcluster.cli", "start, stop and inspect the local cluster"),
    "crd": ("nemotron_operator.api.cli", "print the CRD generated from the pydantic models"),
    "run": ("nemotron_operator.controller.cli", "run the operator (kopf)"),
    "router": ("nemotron_operator.router.cli", "run the OpenAI router"),
    "emulate-engine": (
        "nemotron_operator.engine.emulator.cli",
        "run the vLLM engine emulator (takes vllm serve's flags)",
    ),
    "simulate-autoscaling": (
        "nemotron_operator.autoscaler.cli",
        "replay autoscaling traces through the policy simulator",
    ),
}


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nemotron-operator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if wanted == name:
            module = importlib.import_module(module_name)
            register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
            register = module.register
            register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser(args_list)
    args = parser.parse_args(args_list)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.error(f"subcommand {args.command!r} is not available")
    return func(args)

"""The ``nemotron-operator router`` subcommand: load the config file and serve the OpenAI
endpoint (``serve.serve_forever`` over ``server.Router``). Registered by the top-level
``nemotron_operator.cli``.
"""

from __future__ import annotations

import argparse
import logging

import uvloop

from nemotron_operator.router.configfile import load_config
from nemotron_operator.router.serve import raise_open_files_limit, serve_forever
from nemotron_operator.router.server import Router

__all__ = ["register"]

DEFAULT_CONFIG = "/etc/nemotron/router/config.yaml"


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    raise_open_files_limit()
    config = load_config(args.config)
    router = Router(config, config_path=args.config)
    # uvloop: markedly less CPU per proxied request than the default event loop.
    uvloop.run(
        serve_forever(router, host=args.host, port=args.port, drain_seconds=args.drain_seconds)
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("router", help="run the OpenAI router")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="router config file (YAML)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, how long in-flight requests and streams may take to finish",
    )
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(func=_run)

"""``nemotron-operator crd``: print the CRD generated from ``api.models`` (``api.crd``), or with
``--write`` rewrite the committed copies (``crds/``, the Helm chart's ``crds/``) and the API
reference (``docs/api.md``, ``api.docs``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nemotron_operator.api.crd import render_crd_yaml, write_crd_files
from nemotron_operator.api.docs import API_DOC_PATH, render_api_doc

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    if not args.write:
        sys.stdout.write(render_crd_yaml())
        return 0
    root = Path(args.root)
    written = write_crd_files(root)
    doc = root / API_DOC_PATH
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render_api_doc(), encoding="utf-8")
    for path in [*written, doc]:
        print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``crd`` subcommand."""
    parser = subparsers.add_parser("crd", help="print the CRD generated from the pydantic models")
    parser.add_argument(
        "--write",
        action="store_true",
        help="write crds/, the Helm chart's crds/ and docs/api.md instead of printing",
    )
    parser.add_argument("--root", default=".", help="repository root for --write (default: .)")
    parser.set_defaults(func=_run)

"""The files mounted into every vLLM pod through the ``<name>-engine`` ConfigMap: the chat
template and the tool-call and reasoning parser plugins (plus any pure modules they import
from their own directory).

The controller puts ``engine_files()`` into the ConfigMap and renders vLLM flags that point at
``ENGINE_MOUNT_DIR``; the engine emulator loads the same files from the same paths.
"""

from __future__ import annotations

from importlib import resources

__all__ = [
    "CHAT_TEMPLATE_FILE",
    "ENGINE_MOUNT_DIR",
    "REASONING_PARSER_FILE",
    "REASONING_PARSER_NAME",
    "TOOL_PARSER_FILE",
    "TOOL_PARSER_NAME",
    "engine_files",
]

ENGINE_MOUNT_DIR = "/etc/nemotron/engine"
CHAT_TEMPLATE_FILE = "llama_nemotron_nano_tools.jinja"
TOOL_PARSER_FILE = "nemotron_tool_parser.py"
TOOL_PARSER_NAME = "llama_nemotron_json"
REASONING_PARSER_FILE = "nemotron_reasoning_parser.py"
REASONING_PARSER_NAME = "nemotron_think"


def engine_files() -> dict[str, str]:
    """Every file of ``engine/assets/`` (name -> text), sorted by name for stable hashing."""
    folder = resources.files("nemotron_operator.engine") / "assets"
    files = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.is_file() and not entry.name.startswith((".", "__"))
    }
    return dict(sorted(files.items()))

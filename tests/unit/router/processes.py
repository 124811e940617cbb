"""Real processes on loopback ports for router tests and benchmarks: engine emulators
(``nemotron-operator emulate-engine`` with the model card's flags) and the router itself
(``nemotron-operator router --config``). Each start waits for the process's /health with a
deadline; ``stop`` terminates and reaps it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from nemotron_operator.engine.assets import (
    CHAT_TEMPLATE_FILE,
    REASONING_PARSER_FILE,
    REASONING_PARSER_NAME,
    TOOL_PARSER_FILE,
    TOOL_PARSER_NAME,
)
from tests.support.waiting import wait_for

__all__ = [
    "MODEL",
    "SERVED",
    "emulator_command",
    "free_port",
    "router_config",
    "start_emulator",
    "start_process",
    "start_router",
    "stop",
]

MODEL = "nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1"
SERVED = "nano-4b"
ASSETS = (
    Path(__file__).resolve().parents[3] / "operator" / "nemotron_operator" / "engine" / "assets"
)
CLI = [sys.executable, "-m", "nemotron_operator"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emulator_command(port: int, *, taskset: str | None = None) -> list[str]:
    command = [
        *CLI, "emulate-engine", MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--served-model-name", SERVED,
        "--max-model-len", "131072",
        "--enable-auto-tool-choice",
        "--tool-call-parser", TOOL_PARSER_NAME,
        "--tool-parser-plugin", str(ASSETS / TOOL_PARSER_FILE),
        "--chat-template", str(ASSETS / CHAT_TEMPLATE_FILE),
        "--reasoning-parser-plugin", str(ASSETS / REASONING_PARSER_FILE),
        "--reasoning-parser", REASONING_PARSER_NAME,
    ]  # fmt: skip
    return ["taskset", "-c", taskset, *command] if taskset else command


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/health", timeout=1) as response:
        return bool(response.status == 200)


def start_process(
    command: Sequence[str], url: str, *, env: Mapping[str, str] | None = None, log: Path
) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: (process.poll() is None and _healthy(url)) or process.poll() is not None,
            60,
            what=f"{command[0:4]} healthy",
        )
    except TimeoutError:
        stop(process)
        raise
    if process.poll() is not None:
        raise RuntimeError(f"{command} exited {process.returncode}: {log.read_text()[-2000:]}")
    return process


def start_emulator(
    port: int, log: Path, *, env: Mapping[str, str] | None = None, taskset: str | None = None
) -> subprocess.Popen[bytes]:
    return start_process(
        emulator_command(port, taskset=taskset), f"http://127.0.0.1:{port}", env=env, log=log
    )


def router_config(
    *,
    on: Sequence[str],
    off: Sequence[str],
    pool: Mapping[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    def route(name: str, urls: Sequence[str]) -> dict[str, Any]:
        policy = (
            {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
            if name == "on"
            else {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8192}
        )
        return {
            "name": name,
            "enabled": bool(urls),
            "static_endpoints": [{"url": u} for u in urls],
            **policy,
            **(pool or {}),
        }

    return {"served_model_name": SERVED, "pools": [route("on", on), route("off", off)], **top}


def start_router(
    config: Mapping[str, Any],
    port: int,
    workdir: Path,
    *,
    taskset: str | None = None,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    path = workdir / f"router-{port}.yaml"
    path.write_text(yaml.safe_dump(dict(config)))
    command = [*CLI, "router", "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", *extra]  # fmt: skip
    if taskset:
        command = ["taskset", "-c", taskset, *command]
    return start_process(command, f"http://127.0.0.1:{port}", log=workdir / f"router-{port}.log")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)

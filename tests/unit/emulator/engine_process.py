"""Starts the engine emulator as a real subprocess on 127.0.0.1 for the server tests: the engine
files written into a temporary "mount" directory, the command line rendered by
``engine.args.render_vllm_args`` (what the operator gives vLLM), a free port, and a wait for
``/health``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from nemotron_operator.engine.args import render_vllm_args
from nemotron_operator.engine.assets import REASONING_PARSER_FILE, engine_files
from tests.support.waiting import wait_for

__all__ = [
    "MODEL",
    "Emulator",
    "emulator_command",
    "free_port",
    "run_command",
    "start_emulator",
    "write_mount",
]

MODEL = "nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1"
SERVED = "nano-4b"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_mount(folder: Path) -> Path:
    """The ``<name>-engine`` ConfigMap's files, as the pod runner materialises them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in engine_files().items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def emulator_command(mount: Path, port: int, *extra: str, shutdown_timeout: int = 30) -> list[str]:
    args = render_vllm_args(
        model=MODEL,
        served_model_name=SERVED,
        max_model_len=None,
        tensor_parallel_size=1,
        gpu_memory_utilization=0.95,
        tool_calling=True,
        shutdown_timeout=shutdown_timeout,
        extra_args=extra,
        reasoning_parser=(mount / REASONING_PARSER_FILE).exists(),
        mount_dir=str(mount),
        port=port,
    )
    return [
        sys.executable,
        "-m",
        "nemotron_operator",
        "emulate-engine",
        *args,
        "--host",
        "127.0.0.1",
    ]


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    port: int
    _output: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def output(self, timeout: float = 30) -> str:
        """Wait for the process to end; everything it printed."""
        if self._output is None:
            self._output, _ = self.process.communicate(timeout=timeout)
        return self._output


@contextmanager
def start_emulator(
    mount: Path,
    *extra: str,
    env: Mapping[str, str] | None = None,
    shutdown_timeout: int = 30,
    wait_healthy: bool = True,
) -> Iterator[Emulator]:
    port = free_port()
    command = emulator_command(mount, port, *extra, shutdown_timeout=shutdown_timeout)
    full_env = {**os.environ, "NEMOTRON_EMULATOR_SPEED": "0", **(env or {})}
    process = subprocess.Popen(
        command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    emulator = Emulator(process, port)
    try:
        if wait_healthy:

            def healthy() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"emulator exited: {emulator.output()}")
                return httpx.get(f"{emulator.base_url}/health", timeout=2).status_code == 200

            wait_for(healthy, 30, what="emulator /health 200")
        yield emulator
    finally:
        if process.poll() is None:
            process.kill()
        emulator.output()


def run_command(
    command: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the emulator to completion (start-up failures) and capture what it says."""
    return subprocess.run(
        command,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

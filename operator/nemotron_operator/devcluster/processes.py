"""Starting, finding and stopping the local cluster's processes by pid.

Each process writes its log to ``<state>/logs/<name>.log`` and its pid to
``<state>/pids/<name>.pid``. A pid is only trusted while ``/proc/<pid>/cmdline`` still names
the program it was recorded for, so a stale file never makes ``down`` kill a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["alive", "running_pid", "start", "stop", "stop_all"]

# Processes this interpreter started, kept so they are reaped when stopped (no zombies) and
# never garbage-collected while running (which Python reports as a ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs and its command line contains ``marker``."""
    cmd = _cmdline(pid)
    if not cmd or marker not in cmd:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    return True


def _pid_file(state: Path, name: str) -> Path:
    return state / "pids" / f"{name}.pid"


def running_pid(state: Path, name: str) -> int | None:
    """The recorded pid of ``name`` if that process still runs."""
    path = _pid_file(state, name)
    try:
        pid_text, marker = path.read_text().split("\n", 1)
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if alive(pid, marker.strip()) else None


def start(
    state: Path,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached (own session), logging to the state dir; return its pid."""
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "pids").mkdir(parents=True, exist_ok=True)
    with (state / "logs" / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    _pid_file(state, name).write_text(f"{proc.pid}\n{Path(argv[0]).name}")
    _children[proc.pid] = proc
    return proc.pid


def stop(state: Path, name: str, *, timeout: float = 10.0) -> bool:
    """SIGTERM the process group of ``name``, SIGKILL after ``timeout``; True if one ran."""
    pid = running_pid(state, name)
    _pid_file(state, name).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    child = _children.pop(pid, None)
    if child is not None:  # ours: wait on it, which also reaps it
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            child.wait()
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or not alive(pid, ""):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def stop_all(state: Path, order: Sequence[str]) -> list[str]:
    """Stop every recorded process, ``order`` first (the rest after); return the names stopped."""
    pids = state / "pids"
    names = (
        list(order) + sorted(p.stem for p in pids.glob("*.pid") if p.stem not in order)
        if pids.is_dir()
        else list(order)
    )
    return [name for name in names if stop(state, name)]

"""Finds or builds the pinned upstream binaries of the local cluster.

Lookup order per program: the env var ``NEMOTRON_<NAME>`` (e.g. ``NEMOTRON_KUBE_APISERVER``),
a directory in ``NEMOTRON_DEVCLUSTER_BIN_DIR``, the version-keyed cache
(``~/.cache/nemotron-operator/bin/<group>-<version>/``), ``PATH`` only when
``NEMOTRON_DEVCLUSTER_USE_PATH=1`` (a binary of another version would silently change what the
tests test), and finally a build from the Go module proxy with the machine's toolchain
(``GOTOOLCHAIN=local``). A warm cache builds nothing.

Programs whose go.mod replaces sibling modules with local paths (Kubernetes' staging modules,
etcd's api/client/pkg) are built from a small generated pinning module whose replace lines map
each sibling to its published version; the others with ``go install pkg@version``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from nemotron_operator.devcluster.versions import PROGRAMS, Program

__all__ = ["BuildError", "cache_root", "ensure_binaries", "find_binary", "pinning_go_mod"]

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """A binary could not be found or built; the message says which and why."""


def cache_root() -> Path:
    base = os.environ.get("NEMOTRON_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nemotron-operator"
    )
    return Path(base)


def _env_name(program: str) -> str:
    return "NEMOTRON_" + program.upper().replace("-", "_")


def find_binary(name: str) -> Path | None:
    """The binary for ``name`` without building: env var, bin dir, cache, optionally PATH."""
    program = PROGRAMS[name]
    explicit = os.environ.get(_env_name(name))
    if explicit:
        return Path(explicit)
    bin_dir = os.environ.get("NEMOTRON_DEVCLUSTER_BIN_DIR")
    if bin_dir and (Path(bin_dir) / name).is_file():
        return Path(bin_dir) / name
    cached = cache_root() / "bin" / program.cache_key / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    if os.environ.get("NEMOTRON_DEVCLUSTER_USE_PATH") == "1":
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def _staging_version(kubernetes_version: str) -> str:
    """k8s.io/kubernetes v1.36.3 -> its staging modules' published version v0.36.3."""
    match = re.fullmatch(r"v1\.(\d+\.\d+.*)", kubernetes_version)
    if not match:
        raise BuildError(f"unexpected Kubernetes version {kubernetes_version!r}")
    return f"v0.{match.group(1)}"


def local_replaces(go_mod_text: str) -> list[str]:
    """Module paths that a go.mod replaces with a local directory (``=> ./x`` or ``=> ../x``)."""
    found = []
    for line in go_mod_text.splitlines():
        match = re.match(r"^\s*(?:replace\s+)?(\S+)\s*=>\s*(\.\.?/\S*)\s*$", line)
        if match and "FORBIDDEN" not in match.group(2):
            found.append(match.group(1))
    return found


def pinning_go_mod(program: Program, upstream_go_mod: str) -> str:
    """The go.mod of the pinning module that builds ``program`` (pure, unit-tested)."""
    replaced = local_replaces(upstream_go_mod)
    if program.module == "k8s.io/kubernetes":
        sibling_version = _staging_version(program.version)
    else:
        sibling_version = program.version
    lines = [
        f"module nemotron.dev/pins/{program.group}",
        "",
        "go 1.26.0",
        "",
        f"require {program.module} {program.version}",
        "",
        "replace (",
        *(f"\t{mod} => {mod} {sibling_version}" for mod in replaced),
        ")",
        "",
    ]
    return "\n".join(lines)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env["CGO_ENABLED"] = "0"
    return env


def _run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env or _go_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def _upstream_go_mod(program: Program) -> str:
    info = json.loads(
        _run(["go", "mod", "download", "-json", f"{program.module}@{program.version}"])
    )
    return Path(info["GoMod"]).read_text()


def _build_group(programs: list[Program], progress: Progress) -> None:
    first = programs[0]
    out_dir = cache_root() / "bin" / first.cache_key
    out_dir.mkdir(parents=True, exist_ok=True)
    ldflags = " ".join(["-s", "-w", *(f"-X {var}={value}" for var, value in first.link_vars)])
    names = ", ".join(p.name for p in programs)
    progress(f"building {names} {first.version} with {_run(['go', 'env', 'GOVERSION']).strip()}")
    if first.needs_pinning_module:
        src = cache_root() / "src" / first.cache_key
        src.mkdir(parents=True, exist_ok=True)
        (src / "go.mod").write_text(pinning_go_mod(first, _upstream_go_mod(first)))
        env = _go_env() | {"GOFLAGS": "-mod=mod"}
        # Build into a temp dir, then move: an interrupted build never leaves a partial binary
        # in the cache (the cache check is "file exists").
        tmp = out_dir.with_name(out_dir.name + ".partial")
        tmp.mkdir(exist_ok=True)
        # One program at a time with its own -o file (a directory -o would name etcd "v3");
        # Go's build cache shares the work between them.
        for p in programs:
            cmd = ["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(tmp / p.name)]
            _run([*cmd, p.package], cwd=src, env=env)
        for p in programs:
            (tmp / p.name).replace(out_dir / p.name)
        tmp.rmdir()
    else:
        tmp = out_dir.with_name(out_dir.name + ".partial")
        tmp.mkdir(exist_ok=True)
        env = _go_env() | {"GOBIN": str(tmp)}
        _run(
            [
                "go",
                "install",
                "-trimpath",
                f"-ldflags={ldflags}",
                f"{first.package}@{first.version}",
            ],
            env=env,
        )
        (tmp / first.name).replace(out_dir / first.name)
        tmp.rmdir()


def ensure_binaries(
    names: Iterable[str] | None = None, *, progress: Progress | None = None
) -> dict[str, Path]:
    """Paths of the requested binaries (all by default), building the missing ones."""
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    wanted = list(names or PROGRAMS)
    missing: dict[str, list[Program]] = {}
    for name in wanted:
        if find_binary(name) is None:
            program = PROGRAMS[name]
            missing.setdefault(program.cache_key, []).append(program)
    if missing and shutil.which("go") is None:
        raise BuildError(
            f"missing binaries {sorted(p.name for g in missing.values() for p in g)} and no Go "
            "toolchain to build them; install Go or point NEMOTRON_DEVCLUSTER_BIN_DIR at them"
        )
    for group in missing.values():
        _build_group(group, say)
    found = {name: find_binary(name) for name in wanted}
    absent = [name for name, path in found.items() if path is None]
    if absent:
        raise BuildError(f"binaries still missing after the build: {absent}")
    return {name: path for name, path in found.items() if path is not None}

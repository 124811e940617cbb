"""The pod launcher in a real private mount namespace: a volume mounted over an ancestor of the
checkout (an emptyDir at /tmp with the repository under /tmp, as in a CI clone) hides neither
the other volumes' sources nor the program's own files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(sys.platform != "linux", reason="mount namespaces are Linux")
def test_a_volume_over_an_ancestor_of_the_checkout_hides_nothing_needed(tmp_path: Path) -> None:
    covered = tmp_path / "tmp"  # plays /tmp
    repo = covered / "clone"  # the checkout, under it
    (repo / "state" / "cfg").mkdir(parents=True)
    (repo / "state" / "cfg" / "greeting").write_text("hello")
    (repo / "program.txt").write_text("code")
    empty_dir = tmp_path / "emptydir"
    empty_dir.mkdir()
    mounted = tmp_path / "etc-cfg"
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "argv": ["sh", "-c", f"cat {repo}/program.txt {mounted}/greeting && ls {covered}"],
                "env": {"PATH": os.environ["PATH"]},
                "cwd": str(tmp_path),
                "mounts": [
                    {"source": str(empty_dir), "target": str(covered), "read_only": False},
                    {
                        "source": str(repo / "state" / "cfg"),
                        "target": str(mounted),
                        "read_only": True,
                    },
                ],
                "keep_visible": [str(repo)],
            }
        )
    )
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare[1:1] = ["--user", "--map-root-user"]
    proc = subprocess.run(
        [*unshare, "--", sys.executable, "-m", "nemotron_operator.devcluster.podexec", str(spec)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    # Both files read; the covering volume shows only the re-exposed checkout.
    assert proc.stdout == "codehelloclone\n"

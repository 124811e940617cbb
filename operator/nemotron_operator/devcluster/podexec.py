"""Process launcher of the pod runner: ``python -m nemotron_operator.devcluster.podexec SPEC``.

Runs inside ``unshare --mount --propagation private`` (a private mount namespace), bind-mounts
the pod's materialised volumes at their real mount paths (read-only where asked), then execs
the container's program with its environment. So programs see the paths they would see in a
cluster, ``/var/run/secrets/kubernetes.io/serviceaccount`` included, and a missing or wrong
mount fails here as it would there. The mount points created on the host stay empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]


def _bind(source: str, target: str, read_only: bool) -> None:
    src, dst = Path(source), Path(target)
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.touch()
    subprocess.run(["mount", "--bind", str(src), str(dst)], check=True)
    if read_only:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(dst)], check=True)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    for mount in spec["mounts"]:
        _bind(mount["source"], mount["target"], mount["read_only"])
    if spec.get("cwd"):
        os.chdir(spec["cwd"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

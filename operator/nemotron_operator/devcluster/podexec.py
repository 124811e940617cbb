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


def _bind(source_fd: int, is_dir: bool, target: str, read_only: bool) -> None:
    dst = Path(target)
    if is_dir:
        dst.mkdir(parents=True, exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.touch()
    # The source by descriptor: an earlier mount (an emptyDir at /tmp, say) may hide the
    # source's path -- the state directory may live under it -- but not an open descriptor.
    src = f"/proc/self/fd/{source_fd}"
    subprocess.run(
        ["mount", "--no-canonicalize", "--bind", src, str(dst)], check=True, pass_fds=(source_fd,)
    )
    if read_only:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(dst)], check=True)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    # The host paths the pod's program runs from (repository, venv, state): a volume mounted at
    # one of their ancestors (an emptyDir at /tmp with the checkout under /tmp) would hide them.
    kept = [
        (p, os.open(p, os.O_PATH), os.stat(p))
        for p in spec.get("keep_visible", [])
        if os.path.exists(p)
    ]
    # Open every source before the first mount can cover any of them.
    opened = [
        (os.open(m["source"], os.O_PATH), Path(m["source"]).is_dir(), m) for m in spec["mounts"]
    ]
    for fd, is_dir, mount in opened:
        _bind(fd, is_dir, mount["target"], mount["read_only"])
        os.close(fd)
    for path, fd, before in kept:
        now = os.stat(path) if os.path.exists(path) else None
        if now is None or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            _bind(fd, True, path, False)  # put the covered host path back on top
        os.close(fd)
    if spec.get("cwd"):
        os.chdir(spec["cwd"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

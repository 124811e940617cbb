"""Figures of the local cluster: warm ``devcluster up`` time and control-plane memory.

    .venv/bin/python tests/perf/bench_devcluster.py [--runs 3]

Uses its own state directory (so a developer's running cluster is untouched only if it is
down: the ports are fixed, so this refuses to run while one is up). Prints, per run, the
seconds from ``up`` to API ready + all nodes Ready, then the resident memory of each
control-plane process with the cluster idle.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from nemotron_operator.devcluster import processes
from nemotron_operator.devcluster.binaries import ensure_binaries
from nemotron_operator.devcluster.cluster import STOP_ORDER, Cluster


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if Cluster().is_up():
        print(
            "a local cluster is up on the fixed ports; run `devcluster down` first", file=sys.stderr
        )
        return 2
    ensure_binaries()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            cluster = Cluster(Path(tmp) / f"run{run}")
            began = time.monotonic()
            cluster.up(progress=lambda _: None)
            times.append(time.monotonic() - began)
            print(f"run {run + 1}: up (API ready, all nodes Ready) in {times[-1]:.1f} s")
            if run == args.runs - 1:
                time.sleep(10)  # settle: measure idle memory, not start-up peaks
                total = 0.0
                for name in reversed(STOP_ORDER):
                    pid = processes.running_pid(cluster.state, name)
                    if pid:
                        mib = rss_mib(pid)
                        total += mib
                        print(f"  {name:<24} {mib:7.1f} MiB")
                print(f"  {'control plane total':<24} {total:7.1f} MiB")
            cluster.down(progress=lambda _: None)
    print(f"warm up: min {min(times):.1f} s, max {max(times):.1f} s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

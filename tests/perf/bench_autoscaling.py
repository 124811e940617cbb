"""Autoscaling benchmark: replays A1-A3 (WORKLOADS.md) through the simulator for our policy,
a KEDA-style threshold and a KubeAI-style average, prints the table of docs/benchmarks.md and
writes the plots of docs/img/. Same as ``nemotron-operator simulate-autoscaling --plots docs/img``.

Run: .venv/bin/python tests/perf/bench_autoscaling.py [--seed N] [--plots DIR]
"""

from __future__ import annotations

import sys

from nemotron_operator.cli import main

if __name__ == "__main__":
    args = sys.argv[1:] or ["--plots", "docs/img"]
    sys.exit(main(["simulate-autoscaling", *args]))

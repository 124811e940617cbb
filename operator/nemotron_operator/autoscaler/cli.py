"""``nemotron-operator simulate-autoscaling``: replay the A1-A3 traces through the policies.

Prints the comparison table (``comparison.format_table``) and writes PNG plots
(``plots.plot_trace``); it is also the autoscaling benchmark of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from nemotron_operator.autoscaler.comparison import format_table, run_comparison
    from nemotron_operator.autoscaler.traces import TRACES

    traces = [t.strip().upper() for t in args.traces.split(",") if t.strip()]
    unknown = [t for t in traces if t not in TRACES]
    if unknown:
        print(f"unknown trace(s): {', '.join(unknown)}; known: {', '.join(TRACES)}")
        return 2
    startups = [float(s) for s in args.startup.split(",")]
    started = time.process_time()
    rows = run_comparison(traces=traces, startups=startups, seed=args.seed)
    cpu = time.process_time() - started
    print("Fluid model:\n")
    print(format_table(rows))
    print(f"\n(seed {args.seed}; {len(rows)} runs in {cpu:.1f} s of CPU)")
    checked = [t.strip().upper() for t in args.per_request.split(",") if t.strip()]
    checked = [t for t in traces if t in checked]
    if checked:
        started = time.process_time()
        per_request = run_comparison(
            traces=checked, startups=startups, seed=args.seed, per_request=True
        )
        cpu = time.process_time() - started
        print("\nPer-request cross-check:\n")
        print(format_table(per_request))
        print(f"\n(seed {args.seed}; {len(per_request)} runs in {cpu:.1f} s of CPU)")
    if args.plots:
        from nemotron_operator.autoscaler.plots import plot_trace

        out = Path(args.plots)
        first = startups[0]
        for name in traces:
            mine = [r for r in rows if r.trace == name and r.startup_s == first]
            title = f"{TRACES[name]().title}; engine start-up {first:.0f} s"
            path = plot_trace(mine, out / f"autoscaling-{name.lower()}.png", title=title)
            print(f"wrote {path}")
            bursts = TRACES[name]().bursts
            if bursts:
                start = bursts[0][0]
                path = plot_trace(
                    mine,
                    out / f"autoscaling-{name.lower()}-burst.png",
                    title=f"{title} (first burst)",
                    window=(start - 120, start + 900),
                )
                print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "simulate-autoscaling",
        help="replay autoscaling traces through the policy simulator",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--traces", default="A1,A2,A3", help="comma-separated: A1,A2,A3")
    parser.add_argument(
        "--startup", default="90,300", help="engine start-up delays in seconds, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the Poisson arrivals")
    parser.add_argument(
        "--per-request",
        default="A2,A3",
        help="traces to replay also request by request (empty: none; A1 is ~5M requests)",
    )
    parser.add_argument("--plots", default="", help="directory for PNG plots (none if empty)")
    parser.set_defaults(func=_run)

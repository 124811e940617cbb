"""Workload R1 (router overhead): direct to the backends vs our router vs `vllm-router`, same
backends, same run. Prints req/s, p50/p99 latency (and the latency added over direct), router
CPU-ms per request (from the router process's own CPU time over the run) and errors, for
non-streaming and streaming (32 SSE chunks) chat requests at each concurrency.

Our router runs with every feature on: API key check, mode classification and prompt rewrite,
policy, admission, power-of-two balancing with engine-metrics scraping, Prometheus metrics.

Usage (2-core machine; the router under test on CPU 0, load generator and backends on CPU 1):
  VLLM_ROUTER=/tmp/vr-venv/bin/vllm-router taskset -c 1 .venv/bin/python tests/perf/bench_router.py \
      --router-cpus 0 --backend-cpus 1 --duration 8 --concurrency 32,256
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from routerbench import (
    PYTHON,
    ROOT,
    free_port,
    percentile,
    pinned,
    start,
    stop,
    tree_cpu_seconds,
    vllm_router_binary,
)

KEY = "sk-bench"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the plot of a short story about a lighthouse keeper."},
]  # ~200 bytes of messages, as R1 asks


@dataclass
class Result:
    target: str
    stream: bool
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def load(
    urls: list[str], *, stream: bool, concurrency: int, duration: float, headers: dict[str, str]
) -> tuple[int, int, list[float], float]:
    body = json.dumps({"model": "nano-4b", "messages": MESSAGES, "max_tokens": 64,
                       "stream": stream, "reasoning": "off"}).encode()  # fmt: skip
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + duration
        counter = 0

        async def worker() -> None:
            nonlocal errors, counter
            while time.monotonic() < deadline:
                url = urls[counter % len(urls)]
                counter += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as r:
                        data = await r.read()
                        ok = r.status == 200 and (not stream or data.endswith(b"[DONE]\n\n"))
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.monotonic() - started
    return len(latencies), errors, latencies, seconds


def run_one(target: str, urls: list[str], pid: int | None, *, stream: bool, concurrency: int,
            duration: float) -> Result:  # fmt: skip
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    # Warm-up: connections, caches.
    asyncio.run(load(urls, stream=stream, concurrency=concurrency, duration=1.0, headers=headers))
    cpu0 = tree_cpu_seconds(pid) if pid else None
    n, errors, latencies, seconds = asyncio.run(
        load(urls, stream=stream, concurrency=concurrency, duration=duration, headers=headers)
    )
    cpu = tree_cpu_seconds(pid) - cpu0 if pid and cpu0 is not None else None
    return Result(target, stream, concurrency, n, errors, seconds, latencies, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", default="32,256")
    parser.add_argument("--router-cpus", default=None, help="taskset CPU list for the routers")
    parser.add_argument("--backend-cpus", default=None, help="taskset CPU list for the backends")
    parser.add_argument("--peer-policies", default="round_robin,power_of_two,cache_aware")
    parser.add_argument("--modes", default="nonstream,stream")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    modes = [m == "stream" for m in args.modes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-router-"))
    processes = []
    try:
        backends = []
        for _ in range(args.backends):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [PYTHON, str(ROOT / "tests/perf/trivial_engine.py"), "--port", str(port)]
            processes.append(
                start(pinned(command, args.backend_cpus), url, workdir / f"b{port}.log")
            )
            backends.append(url)
        targets: list[tuple[str, list[str], int | None, object]] = [
            ("direct", [b + "/v1/chat/completions" for b in backends], None, None)
        ]
        # Ours, all features on.
        keys = workdir / "keys"
        keys.mkdir()
        (keys / "bench").write_text(KEY)
        route = {"static_endpoints": [{"url": b} for b in backends], "max_queue": 4096}
        config = {
            "served_model_name": "nano-4b",
            "api_keys_dir": str(keys),
            "pools": [
                {"name": "off", "temperature": 0.0, "top_p": 1.0, "max_tokens": 8192, **route},
                {"name": "on", "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, **route},
            ],
        }
        (workdir / "router.yaml").write_text(yaml.safe_dump(config))
        port = free_port()
        ours = start(
            pinned(
                [
                    PYTHON,
                    "-m",
                    "nemotron_operator",
                    "router",
                    "--config",
                    str(workdir / "router.yaml"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                args.router_cpus,
            ),
            f"http://127.0.0.1:{port}",
            workdir / "ours.log",
        )
        processes.append(ours)
        targets.append(("ours", [f"http://127.0.0.1:{port}/v1/chat/completions"], ours.pid, ours))
        peer = vllm_router_binary()
        peers = []
        if peer is None:
            print("vllm-router not found (set VLLM_ROUTER); peer rows skipped")
        else:
            for policy in args.peer_policies.split(","):
                port = free_port()
                process = start(
                    pinned(
                        [
                            peer,
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                            "--worker-urls",
                            *backends,
                            "--policy",
                            policy,
                            "--log-level",
                            "warning",
                            "--prometheus-port",
                            str(free_port()),
                            "--max-concurrent-requests",
                            "8192",
                            "--queue-size",
                            "8192",
                        ],
                        args.router_cpus,
                    ),
                    f"http://127.0.0.1:{port}",
                    workdir / f"vllm-router-{policy}.log",
                )
                peers.append(process)
                processes.append(process)
                targets.append((f"vllm-router/{policy}",
                                [f"http://127.0.0.1:{port}/v1/chat/completions"], process.pid,
                                process))  # fmt: skip
        results: list[Result] = []
        for stream in modes:
            for concurrency in concurrencies:
                for name, urls, pid, _ in targets:
                    result = run_one(name, urls, pid, stream=stream, concurrency=concurrency,
                                     duration=args.duration)  # fmt: skip
                    results.append(result)
                    print_row(result, results)
        return 0
    finally:
        for process in reversed(processes):
            stop(process)


def print_row(r: Result, results: list[Result]) -> None:
    direct = next(
        (x for x in results if x.target == "direct" and x.stream == r.stream
         and x.concurrency == r.concurrency), None,
    )  # fmt: skip
    added50 = r.p(50) - direct.p(50) if direct and r is not direct else 0.0
    added99 = r.p(99) - direct.p(99) if direct and r is not direct else 0.0
    cpu = f"{r.cpu_seconds * 1000 / max(1, r.requests):.3f}" if r.cpu_seconds is not None else "-"
    print(
        f"| {'stream' if r.stream else 'non-stream'} | {r.concurrency} | {r.target} | "
        f"{r.rps:.0f} | {r.p(50):.2f} | {r.p(99):.2f} | {added50:+.2f} | {added99:+.2f} | "
        f"{cpu} | {r.errors} |",
        flush=True,
    )


if __name__ == "__main__":
    print(
        "| mode | conc. | target | req/s | p50 ms | p99 ms | added p50 | added p99 | "
        "CPU-ms/req | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    raise SystemExit(main())

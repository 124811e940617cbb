"""How many concurrent streams one engine-emulator process sustains on one CPU core.

The emulator runs as its own process pinned to one core (``os.sched_setaffinity``), with its
timing model on; a load generator runs in a separate process pinned to another core and opens
N streaming chat requests at once (aiohttp client), each asking for exactly ``--max-tokens``
tokens (``ignore_eos``). For each level N it prints: errors, streams seen running at once
(the emulator's ``vllm:num_requests_running``), output tokens per second, stream durations
(p50/p99) against what the timing model says they should be for the same load
(``timing.simulate``), and the CPU used by the emulator and by the load generator.

A level is *sustained* when every stream completes, the streams seen running at once reach 90%
of what the model says for the same arrivals, and the median stream takes at most 15% longer
than the model says: past that, the emulator process (its CPU), not the model, sets the pace.
The emulator's run-queue wait (``/proc/<pid>/schedstat``) is printed too: time it was ready to
run while other processes held its core, which on a shared machine slows it without any fault
of its own.

    .venv/bin/python tests/perf/bench_emulator.py --streams 500 1000 2000 3000 4000 \
        --max-tokens 128 --ramp 2 --emulator-core 0 --client-core 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator"))

from nemotron_operator.engine.emulator.flags import DEFAULT_MAX_NUM_BATCHED_TOKENS
from nemotron_operator.engine.emulator.generation import count_prompt_tokens
from nemotron_operator.engine.emulator.timing import (
    Arrival,
    TimingParams,
    kv_capacity_tokens,
    simulate,
)
from nemotron_operator.engine.template import render_chat
from tests.unit.emulator.engine_process import (
    SERVED,
    emulator_command,
    free_port,
    write_mount,
)

MESSAGES = [
    {"role": "system", "content": "detailed thinking off"},
    {"role": "user", "content": "Summarise the plot of a short story about a lighthouse keeper."},
]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_wait_seconds(pid: int) -> float:
    """Time the process was runnable but waiting for its core (other processes on it)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def _peak_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


# --- load generator (runs in its own process) ----------------------------------------------


async def _one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, delay: float
) -> dict[str, Any]:
    await asyncio.sleep(delay)
    started = time.monotonic()
    first = None
    chunks = 0
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            if resp.status != 200:
                return {"error": f"HTTP {resp.status}"}
            tail = b""
            async for data in resp.content.iter_any():
                if first is None:
                    first = time.monotonic()
                text = tail + data
                chunks += text.count(b"\n\ndata: ")
                tail = text[-8:]
            done = b"[DONE]" in tail or b"[DONE]" in data
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {"error": type(exc).__name__}
    end = time.monotonic()
    if not done:
        return {"error": "no [DONE]"}
    return {
        "start": started,
        "ttft": (first or end) - started,
        "duration": end - started,
        "chunks": chunks,
    }


async def _load(url: str, streams: int, max_tokens: int, ramp: float) -> dict[str, Any]:
    body = json.dumps(
        {
            "model": SERVED,
            "messages": MESSAGES,
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "stream": True,
        }
    ).encode()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.monotonic()
        cpu0 = time.process_time()
        results = await asyncio.gather(
            *(_one_stream(session, url, body, ramp * i / streams) for i in range(streams))
        )
        wall = time.monotonic() - began
        cpu = time.process_time() - cpu0
    return {"results": results, "wall": wall, "client_cpu": cpu}


def client_main(args: argparse.Namespace) -> None:
    if args.client_core is not None:
        os.sched_setaffinity(0, {args.client_core})
    out = asyncio.run(_load(args.url, args.streams[0], args.max_tokens, args.ramp))
    Path(args.out).write_text(json.dumps(out))


# --- orchestration ---------------------------------------------------------------------------


def _running(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("vllm:num_requests_running{"))
    return float(line.split()[-1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_level(
    args: argparse.Namespace, base: str, emulator_pid: int, streams: int
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--client",
        "--url",
        f"{base}/v1/chat/completions",
        "--streams",
        str(streams),
        "--max-tokens",
        str(args.max_tokens),
        "--ramp",
        str(args.ramp),
    ]
    if args.client_core is not None:
        command += ["--client-core", str(args.client_core)]
    # results go through a file: a pipe would block the client once its buffer is full
    result_file = Path(tempfile.mkdtemp()) / "results.json"
    command += ["--out", str(result_file)]
    cpu0 = _cpu_seconds(emulator_pid)
    wait0 = _runqueue_wait_seconds(emulator_pid)
    wall0 = time.monotonic()
    client = subprocess.Popen(command)
    peak = 0.0
    while client.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            peak = max(peak, _running(base))
        time.sleep(0.25)
    if client.wait() != 0:
        raise SystemExit(f"load generator failed with status {client.returncode}")
    out = json.loads(result_file.read_text())
    result_file.unlink()
    result_file.parent.rmdir()
    wall = time.monotonic() - wall0
    emulator_cpu = _cpu_seconds(emulator_pid) - cpu0
    emulator_wait = _runqueue_wait_seconds(emulator_pid) - wait0
    ok = [r for r in out["results"] if "error" not in r]
    errors = [r["error"] for r in out["results"] if "error" in r]
    # what the timing model says for the same arrivals
    prompt = count_prompt_tokens(render_chat(MESSAGES))
    t0 = min((r["start"] for r in ok), default=0.0)
    params = TimingParams(
        kv_capacity_tokens=kv_capacity_tokens(gpu_memory_gib=80, gpu_memory_utilization=0.95),
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=max(DEFAULT_MAX_NUM_BATCHED_TOKENS, args.max_num_seqs),
    )
    modeled = simulate(params, [Arrival(r["start"] - t0, prompt, args.max_tokens) for r in ok])
    model_durations = [
        (m.finished_at - (r["start"] - t0)) / args.speed for m, r in zip(modeled, ok, strict=True)
    ]
    # streams alive at once, capped by what the batch and the KV cache admit
    model_peak = min(
        _peak_overlap(
            [(r["start"], r["start"] + d) for r, d in zip(ok, model_durations, strict=True)]
        ),
        params.max_num_seqs,
        params.kv_capacity_tokens // (prompt + args.max_tokens),
    )
    durations = [r["duration"] for r in ok]
    tokens = len(ok) * args.max_tokens  # exact: ignore_eos
    chunks = sum(r["chunks"] for r in ok)
    slowdown = (
        statistics.median(durations) / statistics.median(model_durations) if ok else float("inf")
    )
    return {
        "streams": streams,
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:3],
        "peak_running": peak,
        "model_peak_running": model_peak,
        "tokens_per_s": tokens / out["wall"],
        "chunks_per_s": chunks / out["wall"],
        "duration_p50": statistics.median(durations) if ok else None,
        "duration_p99": _pct(durations, 0.99) if ok else None,
        "model_p50": statistics.median(model_durations) if ok else None,
        "slowdown": slowdown,
        "ttft_p50": statistics.median([r["ttft"] for r in ok]) if ok else None,
        "model_ttft_p50": statistics.median(
            [
                (m.first_token_at - (r["start"] - t0)) / args.speed
                for m, r in zip(modeled, ok, strict=True)
            ]
        )
        if ok
        else None,
        "emulator_cpu_pct": 100 * emulator_cpu / wall,
        "emulator_runqueue_wait_pct": 100 * emulator_wait / wall,
        "client_cpu_pct": 100 * out["client_cpu"] / out["wall"],
        "sustained": not errors and peak >= 0.9 * model_peak and slowdown <= 1.15,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[500, 1000, 2000, 3000])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--speed", type=float, default=1.0, help="NEMOTRON_EMULATOR_SPEED")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which streams open")
    parser.add_argument("--max-num-seqs", type=int, default=4096)
    parser.add_argument("--emulator-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        mount = write_mount(Path(tmp) / "engine")
        port = free_port()
        command = emulator_command(mount, port, "--max-num-seqs", str(args.max_num_seqs))
        env = {**os.environ, "NEMOTRON_EMULATOR_SPEED": str(args.speed)}
        core = args.emulator_core
        emulator = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("emulator did not become healthy")
                time.sleep(0.2)
            print(
                f"# emulator pid {emulator.pid} on core {core}; client on core {args.client_core}; "
                f"max_tokens {args.max_tokens}, speed {args.speed}, max_num_seqs {args.max_num_seqs}"
            )
            for streams in args.streams:
                print(json.dumps(run_level(args, base, emulator.pid, streams)), flush=True)
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)


if __name__ == "__main__":
    main()

"""Workload R2 (routing quality): goodput at SLO of the mixed reasoning workload on 4 emulated
engines, our router (two pools) vs `vllm-router` (one shared pool), same engines, same
arrivals (seeded Poisson), one run.

R2 at full scale relays ~16k SSE chunks/s and runs minutes per point, which a 2-core machine
cannot do; this script scales it, and every factor is a flag printed with the figures:
- ``--length-scale L``: prompt and output lengths x L (R2's ranges otherwise);
- ``--kv-gib``: the emulated GPU memory, so the KV cache shrinks with the lengths and stays
  the binding limit it is at full scale (``--max-model-len`` shrinks with it);
- ``--speed S``: the emulator's timing model runs S x real time;
- the SLOs (TTFT p95 1 s off / 3 s on) scale with request duration, i.e. by L / S.
Our split of the 4 engines (static rule, docs/router.md): engines per pool proportional to the
pool's share of decode tokens, at least one each -> 1 off, 3 on for R2's mix. Our router lends
idle capacity between the pools as the operator configures it by default; it also runs
without lending, to compare (``--ours lending`` for the first only).
Goodput = requests (arrived in the window) that completed and met their class's TTFT SLO, per
second of window.

Usage: VLLM_ROUTER=/tmp/vr-venv/bin/vllm-router .venv/bin/python tests/perf/bench_router_mixed.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from routerbench import PYTHON, ROOT, free_port, percentile, start, stop, vllm_router_binary

ASSETS = ROOT / "operator/nemotron_operator/engine/assets"
ENGINES = 4


@dataclass
class Req:
    at: float
    on: bool
    prompt_tokens: int
    output_tokens: int


@dataclass
class Outcome:
    req: Req
    ttft: float | None
    ok: bool


def workload(rate: float, window: float, scale: float, seed: int) -> list[Req]:
    rng = random.Random(seed)
    out, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= window:
            return out
        on = rng.random() < 0.3
        if on:
            prompt = rng.uniform(200, 2000)
            output = math.exp(rng.uniform(math.log(1000), math.log(8000)))
        else:
            prompt = rng.uniform(200, 1000)
            output = rng.uniform(50, 300)
        out.append(Req(t, on, max(8, int(prompt * scale)), max(2, int(output * scale))))


def body(req: Req) -> bytes:
    return json.dumps({
        "model": "nano-4b",
        "messages": [
            {"role": "system", "content": f"detailed thinking {'on' if req.on else 'off'}"},
            {"role": "user", "content": "lorem " * max(1, req.prompt_tokens - 10)},
        ],
        "max_tokens": req.output_tokens, "ignore_eos": True, "stream": True,
        "temperature": 0.6 if req.on else 0.0, "top_p": 0.95 if req.on else 1.0,
    }).encode()  # fmt: skip


async def drive(url: str, reqs: list[Req], limit_s: float) -> list[Outcome]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=limit_s)
    ) as session:
        t0 = time.monotonic()

        async def one(req: Req) -> Outcome:
            await asyncio.sleep(max(0.0, t0 + req.at - time.monotonic()))
            sent = time.monotonic()
            ttft = None
            try:
                async with session.post(
                    url, data=body(req), headers={"Content-Type": "application/json"}
                ) as r:
                    if r.status != 200:
                        return Outcome(req, None, False)
                    tail = b""
                    async for chunk in r.content.iter_any():
                        if ttft is None:
                            ttft = time.monotonic() - sent
                        tail = (tail + chunk)[-64:]
                    return Outcome(req, ttft, tail.rstrip().endswith(b"[DONE]"))
            except (aiohttp.ClientError, TimeoutError):
                return Outcome(req, ttft, False)

        return await asyncio.gather(*(one(r) for r in reqs))


def start_engines(workdir: Path, args: argparse.Namespace) -> tuple[list[str], list]:  # type: ignore[type-arg]
    urls, procs = [], []
    for _ in range(ENGINES):
        port = free_port()
        command = [
            PYTHON, "-m", "nemotron_operator", "emulate-engine",
            "nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1", "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", "nano-4b", "--max-model-len", str(args.max_model_len),
            "--enable-auto-tool-choice", "--tool-call-parser", "llama_nemotron_json",
            "--tool-parser-plugin", str(ASSETS / "nemotron_tool_parser.py"),
            "--chat-template", str(ASSETS / "llama_nemotron_nano_tools.jinja"),
        ]  # fmt: skip
        env = {"NEMOTRON_EMULATOR_SPEED": str(args.speed),
               "NEMOTRON_EMULATOR_GPU_MEMORY_GIB": str(args.kv_gib)}  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        procs.append(start(command, url, workdir / f"e{port}.log", env))
        urls.append(url)
    return urls, procs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--length-scale", type=float, default=0.125)
    p.add_argument("--kv-gib", type=float, default=16.0)
    p.add_argument("--max-model-len", type=int, default=16384)
    p.add_argument("--speed", type=float, default=0.5)
    p.add_argument("--rates", default="2,4,6", help="arrivals per second (scaled time)")
    p.add_argument("--window", type=float, default=30.0)
    p.add_argument("--policies", default="power_of_two,round_robin")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--ours", default="lending,no-lending", help="our router's variants")
    args = p.parse_args()
    slo_scale = args.length_scale / args.speed
    slo = {False: 1.0 * slo_scale, True: 3.0 * slo_scale}
    workdir = Path(tempfile.mkdtemp(prefix="bench-mixed-"))
    processes = []
    try:
        engines, procs = start_engines(workdir, args)
        processes += procs
        config = {
            "served_model_name": "nano-4b",
            "pools": [
                {"name": "off", "temperature": 0.0, "top_p": 1.0, "max_tokens": 8192,
                 "static_endpoints": [{"url": engines[0]}], "max_queue": 100000,
                 "max_model_len": args.max_model_len},
                {"name": "on", "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768,
                 "static_endpoints": [{"url": u} for u in engines[1:]], "max_queue": 100000,
                 "max_model_len": args.max_model_len},
            ],
        }  # fmt: skip
        targets = []
        for variant in args.ours.split(","):
            # "lending" is what the operator renders by default (router.lendIdleCapacity).
            lending = variant == "lending"
            path = workdir / f"router-{variant}.yaml"
            path.write_text(yaml.safe_dump({**config, "lend_idle_capacity": lending}))
            port = free_port()
            ours = start([PYTHON, "-m", "nemotron_operator", "router", "--config", str(path),
                          "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                         f"http://127.0.0.1:{port}", workdir / f"ours-{variant}.log")  # fmt: skip
            processes.append(ours)
            label = "ours (1 off + 3 on)" + ("" if lending else ", no lending")
            targets.append((label, f"http://127.0.0.1:{port}"))
        peer = vllm_router_binary()
        for policy in args.policies.split(",") if peer else []:
            port = free_port()
            processes.append(start(
                [peer, "--host", "127.0.0.1", "--port", str(port), "--worker-urls", *engines,
                 "--policy", policy, "--log-level", "warning", "--prometheus-port",
                 str(free_port()), "--max-concurrent-requests", "100000", "--queue-size",
                 "100000", "--request-timeout-secs", "3600"],
                f"http://127.0.0.1:{port}", workdir / f"vr-{policy}.log"))  # fmt: skip
            targets.append((f"vllm-router/{policy} (4 shared)", f"http://127.0.0.1:{port}"))
        print(f"R2 scaled: length x{args.length_scale}, KV {args.kv_gib} GiB emulated, "
              f"speed x{args.speed}, window {args.window:g}s, SLO TTFT p95 off "
              f"{slo[False]:.2f}s / on {slo[True]:.2f}s (scaled)")  # fmt: skip
        print("| rate req/s | target | goodput req/s | off TTFT p95 s | on TTFT p95 s | "
              "failed | requests |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for rate in [float(r) for r in args.rates.split(",")]:
            reqs = workload(rate, args.window, args.length_scale, args.seed)
            for name, base in targets:
                outcomes = asyncio.run(drive(base + "/v1/chat/completions", reqs, 600))
                good = sum(1 for o in outcomes if o.ok and o.ttft is not None
                           and o.ttft <= slo[o.req.on])  # fmt: skip
                p95 = {
                    on: percentile([o.ttft if o.ttft is not None else math.inf
                                    for o in outcomes if o.req.on == on], 95)
                    for on in (False, True)
                }  # fmt: skip
                failed = sum(1 for o in outcomes if not o.ok)
                print(f"| {rate:g} | {name} | {good / args.window:.2f} | {p95[False]:.2f} | "
                      f"{p95[True]:.2f} | {failed} | {len(outcomes)} |", flush=True)  # fmt: skip
        return 0
    finally:
        for process in reversed(processes):
            stop(process)


if __name__ == "__main__":
    raise SystemExit(main())

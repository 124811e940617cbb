"""Workload R1 (router overhead): direct to the backends vs our router vs `vllm-router`, same
backends, same run. Prints req/s, p50/p99 latency (and the latency added over direct), router
CPU-ms per request (from the router process's own CPU time over the run) and errors, for
non-streaming and streaming (32 SSE chunks) chat requests at each concurrency.

Two load modes, chosen per row by ``--rate`` (a list; ``0`` = closed loop, the default):
- closed loop (rate 0): ``--concurrency`` workers each send back-to-back for ``--duration``
  seconds; latency runs from each send. This measures throughput at saturation; its added
  latency is mostly queueing behind the slowest process on the machine.
- open loop, paced (rate R > 0): requests start on an evenly spaced schedule, one every 1/R s
  (round(R x duration) of them), with at most ``--concurrency`` in flight. Evenly spaced rather
  than Poisson so that arrivals themselves do not burst: at light load the direct row then
  queues almost nowhere, and the latency a router adds over it is its own per-request delay.
  A request whose slot is not free when due waits for one, and every latency runs from the
  request's scheduled start, so a slow target cannot hide its delay by holding back the
  schedule (no coordinated omission). The req/s column is the achieved rate (completions over
  the time from the first scheduled start to the last completion); the notes under the table
  give it against the scheduled rate, with how many requests waited for a slot, the dispatch
  lag (scheduled start to send: slot waits plus the generator's own wake-up delay, 0.1-0.5 ms
  on a CPU shared with the backends, in every row's latency) and p50/p99 from the send.
``--rate 0,200`` runs both in one invocation; paced rows are marked ``mode@R/s``.

Our router runs with every feature on: API key check, mode classification and prompt rewrite,
policy, admission, power-of-two balancing with engine-metrics scraping, Prometheus metrics.

The load generator shares a CPU with the backends, so it is kept cheap: by default a minimal
HTTP/1.1 keep-alive client on raw asyncio streams under uvloop, request bytes built once, one
connection pool per row kept from warm-up into the measured run (``--client aiohttp`` runs
the same rows through one aiohttp session on asyncio's own loop, to cross-check). Its CPU per
request is in the notes.

Usage (2-core machine; the router under test on CPU 0, load generator and backends on CPU 1):
  VLLM_ROUTER=/tmp/vr-venv/bin/vllm-router taskset -c 1 .venv/bin/python tests/perf/bench_router.py \
      --router-cpus 0 --backend-cpus 1 --duration 8 --concurrency 32,256
  # closed loop and paced at 200 req/s (at most 32 in flight) in one run:
  ... tests/perf/bench_router.py --router-cpus 0 --backend-cpus 1 --duration 8 --concurrency 32 \
      --rate 0,200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import uvloop
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
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
WARM_UP_S = 1.0
DONE = b"[DONE]\n\n"


def request_body(stream: bool) -> bytes:
    return json.dumps({"model": "nano-4b", "messages": MESSAGES, "max_tokens": 64,
                       "stream": stream, "reasoning": "off"}).encode()  # fmt: skip


@dataclass(kw_only=True)
class Result:
    target: str
    stream: bool
    concurrency: int
    rate: float  # 0: closed loop
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float | None
    client_cpu_seconds: float
    scheduled: int = 0  # paced only, from here on
    waited: int = 0
    lags: list[float] = field(default_factory=list)
    from_send: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def mode(self) -> str:
        name = "stream" if self.stream else "non-stream"
        return f"{name}@{self.rate:g}/s" if self.rate else name

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


class Client(Protocol):
    async def post(self, i: int) -> bool:
        """Send request number i (round-robin over the URLs); True if it succeeded."""

    async def close(self) -> None: ...


class _Target:
    """One URL's precomputed request bytes and its idle keep-alive connections."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        head = f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self.request = head.encode("latin-1") + body
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: writes the precomputed request,
    reads the status line and headers, then a Content-Length, chunked or read-to-close body.
    A connection is reused (LIFO) unless the response asked to close it or anything failed.
    Success means what the aiohttp client checked: status 200 and, when streaming, a body that
    ends with the ``[DONE]`` event."""

    def __init__(self, urls: list[str], *, stream: bool) -> None:
        body = request_body(stream)
        self.targets = [_Target(u, body, HEADERS) for u in urls]
        self.stream = stream
        self.writers: set[asyncio.StreamWriter] = set()

    async def post(self, i: int) -> bool:
        target = self.targets[i % len(self.targets)]
        if target.idle:
            reader, writer = target.idle.pop()
            try:
                return await self._exchange(target, reader, writer)
            except _Stale:
                pass  # the server closed an idle connection: the keep-alive race, not an error
        try:
            reader, writer = await asyncio.open_connection(target.host, target.port)
        except OSError:
            return False
        self.writers.add(writer)
        try:
            return await self._exchange(target, reader, writer)
        except _Stale:
            return False

    async def _exchange(
        self, target: _Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            writer.write(target.request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as e:
                if not e.partial:
                    raise _Stale from e
                raise
            except ConnectionResetError as e:
                raise _Stale from e
            lines = head.split(b"\r\n")
            keep = lines[0].startswith(b"HTTP/1.1 ")
            ok = lines[0][9:12] == b"200"
            length: int | None = None
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    keep = keep and b"close" not in value.lower()
            if chunked:
                body = await _read_chunked(reader)
            elif length is not None:
                body = await reader.readexactly(length)
            else:
                body = await reader.read()
                keep = False
        except _Stale:
            self._drop(writer)
            raise
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self._drop(writer)
            return False
        if keep:
            target.idle.append((reader, writer))
        else:
            self._drop(writer)
        return ok and (not self.stream or body.endswith(DONE))

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self.writers.discard(writer)
        writer.close()

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()


class _Stale(Exception):
    """A reused connection was closed before any byte of the response arrived."""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return b"".join(parts)
        data = await reader.readexactly(size + 2)
        if data[-2:] != b"\r\n":
            raise ValueError("bad chunk")
        parts.append(data[:-2])


class AiohttpClient:
    """The same requests through one aiohttp session (the benchmark's original client)."""

    def __init__(self, urls: list[str], *, stream: bool) -> None:
        self.urls = urls
        self.body = request_body(stream)
        self.stream = stream
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def post(self, i: int) -> bool:
        try:
            async with self.session.post(
                self.urls[i % len(self.urls)], data=self.body, headers=HEADERS
            ) as r:
                data = await r.read()
                return r.status == 200 and (not self.stream or data.endswith(DONE))
        except aiohttp.ClientError:
            return False

    async def close(self) -> None:
        await self.session.close()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    from_send: list[float] = field(default_factory=list)  # differs from latencies when paced
    errors: int = 0
    inflight: int = 0
    started: int = 0

    async def send(self, client: Client, i: int, since: float) -> None:
        """Send request i and record its latency from `since` (its send or scheduled time)."""
        self.started += 1
        self.inflight += 1
        sent = time.perf_counter()
        ok = await client.post(i)
        end = time.perf_counter()
        self.inflight -= 1
        if ok:
            self.latencies.append(end - since)
            self.from_send.append(end - sent)
        else:
            self.errors += 1


async def closed_loop(client: Client, tally: Tally, *, concurrency: int, duration: float) -> None:
    deadline = time.monotonic() + duration
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while time.monotonic() < deadline:
            counter += 1
            await tally.send(client, counter - 1, time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


@dataclass
class Pacing:
    scheduled: int = 0
    waited: int = 0  # requests whose slot was not free when due
    lags: list[float] = field(default_factory=list)  # send time - scheduled time


async def paced(
    client: Client, tally: Tally, pacing: Pacing, *, rate: float, concurrency: int,
    duration: float,
) -> None:  # fmt: skip
    """Start round(rate x duration) requests at t0 + i / rate, at most `concurrency` in flight;
    one that finds no free slot waits (FIFO) for one, its latency still from its due time.

    The schedule runs in a thread that sleeps on a kernel timer (nanosecond resolution) and
    hands each due request to the event loop: the loop's own timers work on a millisecond grid
    (uvloop fires up to ~0.4 ms early, asyncio up to 1 ms late), and with a period that is a
    whole number of milliseconds every request of a row lands on the same phase of that grid,
    which measured as a 0.2-0.5 ms dispatch lag at p50 that differed from row to row -- as
    large as the router delay being measured."""
    loop = asyncio.get_running_loop()
    pacing.scheduled = n = max(1, round(rate * duration))
    free = concurrency
    waiting: deque[tuple[int, float]] = deque()
    tasks: set[asyncio.Task[None]] = set()
    finished = 0
    all_done = loop.create_future()
    stop = threading.Event()  # set when the run ends: the pacer and queued requests stop

    def launch(i: int, due: float) -> None:
        nonlocal free
        free -= 1
        pacing.lags.append(time.perf_counter() - due)
        task = loop.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def one(i: int, due: float) -> None:
        nonlocal free, finished
        try:
            await tally.send(client, i, due)
        finally:
            free += 1
            if waiting and not stop.is_set():
                launch(*waiting.popleft())
            finished += 1
            if finished == n and not all_done.done():
                all_done.set_result(None)

    def due_now(i: int, due: float) -> None:  # on the loop
        if stop.is_set():  # queued by the pacer just before the run ended
            return
        if free:
            launch(i, due)
        else:
            pacing.waited += 1
            waiting.append((i, due))

    def schedule() -> None:  # in the thread
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            if stop.wait(max(0.0, due - time.perf_counter())):
                return
            try:
                loop.call_soon_threadsafe(due_now, i, due)
            except RuntimeError:  # the loop is closed: the run was abandoned
                return

    thread = threading.Thread(target=schedule, name="pacer", daemon=True)
    thread.start()
    try:
        await all_done
    finally:  # done, or abandoned at the deadline: then end what is still in flight
        stop.set()
        thread.join()
        for task in list(tasks):
            task.cancel()


async def measure(
    make_client: Callable[[], Client], pid: int | None, *, rate: float, concurrency: int,
    duration: float,
) -> tuple[Tally, Pacing, float, float | None, float]:  # fmt: skip
    """Warm up (connections, caches) then run, with one client for both so that the run starts
    on warm connections. Returns the tallies, elapsed seconds, the router's and this process's
    CPU seconds over the run. A phase that hangs ends after a deadline, the run's unfinished
    requests counted as errors."""
    client = make_client()
    tally, pacing = Tally(), Pacing()

    async def drive(t: Tally, p: Pacing, seconds: float) -> None:
        try:
            async with asyncio.timeout(3 * seconds + 60):
                if rate:
                    await paced(client, t, p, rate=rate, concurrency=concurrency, duration=seconds)
                else:
                    await closed_loop(client, t, concurrency=concurrency, duration=seconds)
        except TimeoutError:
            t.errors += t.inflight + max(0, p.scheduled - t.started)

    try:
        await drive(Tally(), Pacing(), WARM_UP_S)
        cpu0 = tree_cpu_seconds(pid) if pid else None
        own0 = time.process_time()
        started = time.perf_counter()
        await drive(tally, pacing, duration)
        seconds = time.perf_counter() - started
        own = time.process_time() - own0
        cpu = tree_cpu_seconds(pid) - cpu0 if pid and cpu0 is not None else None
    finally:
        await client.close()
    return tally, pacing, seconds, cpu, own


def run_one(target: str, urls: list[str], pid: int | None, *, stream: bool, concurrency: int,
            rate: float, duration: float, client: str) -> Result:  # fmt: skip
    def make_client() -> Client:
        kind = RawClient if client == "raw" else AiohttpClient
        return kind(urls, stream=stream)

    run = measure(make_client, pid, rate=rate, concurrency=concurrency, duration=duration)
    if client == "raw":
        tally, pacing, seconds, cpu, own = uvloop.run(run)
    else:
        tally, pacing, seconds, cpu, own = asyncio.run(run)
    return Result(target=target, stream=stream, concurrency=concurrency, rate=rate,
                  requests=len(tally.latencies), errors=tally.errors, seconds=seconds,
                  latencies=tally.latencies, cpu_seconds=cpu, client_cpu_seconds=own,
                  scheduled=pacing.scheduled, waited=pacing.waited,
                  lags=pacing.lags, from_send=tally.from_send)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument(
        "--concurrency", default="32,256", help="closed loop: workers; paced: most in flight"
    )
    parser.add_argument(
        "--rate", default="0", help="requests/s, a list; 0 = closed loop (e.g. 0,200)"
    )
    parser.add_argument("--router-cpus", default=None, help="taskset CPU list for the routers")
    parser.add_argument("--backend-cpus", default=None, help="taskset CPU list for the backends")
    parser.add_argument("--peer-policies", default="round_robin,power_of_two,cache_aware")
    parser.add_argument("--modes", default="nonstream,stream")
    parser.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    rates = [float(r) for r in args.rate.split(",")]
    if any(r < 0 for r in rates):
        parser.error("--rate: requests/s must be >= 0")
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
        print(
            "| mode | conc. | target | req/s | p50 ms | p99 ms | added p50 | added p99 | "
            "CPU-ms/req | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        results: list[Result] = []
        for stream in modes:
            for rate in rates:
                for concurrency in concurrencies:
                    for name, urls, pid, _ in targets:
                        result = run_one(name, urls, pid, stream=stream, concurrency=concurrency,
                                         rate=rate, duration=args.duration,
                                         client=args.client)  # fmt: skip
                        results.append(result)
                        print_row(result, results)
        print_notes(results, args.client)
        return 0
    finally:
        for process in reversed(processes):
            stop(process)


def print_row(r: Result, results: list[Result]) -> None:
    direct = next(
        (x for x in results if x.target == "direct" and x.stream == r.stream
         and x.concurrency == r.concurrency and x.rate == r.rate), None,
    )  # fmt: skip
    added50 = r.p(50) - direct.p(50) if direct and r is not direct else 0.0
    added99 = r.p(99) - direct.p(99) if direct and r is not direct else 0.0
    cpu = f"{r.cpu_seconds * 1000 / max(1, r.requests):.3f}" if r.cpu_seconds is not None else "-"
    print(
        f"| {r.mode} | {r.concurrency} | {r.target} | "
        f"{r.rps:.0f} | {r.p(50):.2f} | {r.p(99):.2f} | {added50:+.2f} | {added99:+.2f} | "
        f"{cpu} | {r.errors} |",
        flush=True,
    )


def print_notes(results: list[Result], client: str) -> None:
    """Per row: the load generator's own CPU per request and, for paced rows, the achieved
    rate against the schedule, slot waits and the generator's dispatch lag."""
    print(f"\nLoad generator: {client} client; CPU-ms/req is its own process's CPU over the run.")
    if any(r.rate for r in results):
        print(
            "Paced rows: evenly spaced starts, at most conc. in flight, latency from the "
            "scheduled start; lag = send time - scheduled time (slot waits and the generator's "
            "own wake-up delay; in every row's latency); latency from send leaves lag out."
        )
    for r in results:
        own = r.client_cpu_seconds * 1000 / max(1, r.requests + r.errors)
        note = f"- {r.mode} | {r.concurrency} | {r.target}: load generator {own:.3f} CPU-ms/req"
        if r.rate:
            lag = [percentile(r.lags, q) * 1000 for q in (50, 99, 100)]
            sent = [percentile(r.from_send, q) * 1000 for q in (50, 99)]
            note += (
                f"; achieved {r.rps:.1f} req/s of {r.rate:g} scheduled ({r.scheduled} requests "
                f"in {r.seconds:.2f} s), {r.waited} waited for a slot, lag p50 {lag[0]:.2f} / "
                f"p99 {lag[1]:.2f} / max {lag[2]:.2f} ms, latency from send p50 {sent[0]:.2f} / "
                f"p99 {sent[1]:.2f} ms"
            )
        print(note, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""The emulator's HTTP server (aiohttp): vLLM's OpenAI routes over the scheduler, plus start-up
delay, faults, API keys and the SIGTERM drain.

Routes: ``/health``, ``/version``, ``/metrics``, ``/v1/models``, ``/v1/chat/completions``,
``/v1/completions``. Requests are parsed by ``protocol``, planned by ``generation``, timed by
``scheduler``/``timing`` and shaped by ``shaping``; ``metrics`` holds vLLM's metrics. ``serve``
runs it until SIGTERM/SIGINT, then drains: new requests get 503, requests in flight finish
within ``--shutdown-timeout`` seconds, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

from aiohttp import web

from nemotron_operator.engine.emulator.faults import FaultState
from nemotron_operator.engine.emulator.flags import EmulatorEnv, EngineFlags
from nemotron_operator.engine.emulator.generation import Generation, plan_generation
from nemotron_operator.engine.emulator.metrics import CONTENT_TYPE, EngineMetrics
from nemotron_operator.engine.emulator.plugins import LoadedPlugins, StartupError
from nemotron_operator.engine.emulator.protocol import (
    SAMPLING_KEYS,
    Job,
    ProtocolContext,
    RequestError,
    parse_chat,
    parse_completion,
)
from nemotron_operator.engine.emulator.scheduler import EngineScheduler, Outbox
from nemotron_operator.engine.emulator.shaping import (
    ChunkWriter,
    OutputStream,
    chat_response,
    completion_response,
    usage,
)
from nemotron_operator.engine.emulator.timing import BatchModel, TimingParams, kv_capacity_tokens

__all__ = ["EMULATOR_VERSION", "EngineServer", "serve"]

EMULATOR_VERSION = "0.33.0+nemotron-emulator"
SAMPLING_HEADER = "X-Emulator-Sampling"
MODE_HEADER = "X-Emulator-Mode"


def _error(message: str, status: int, kind: str) -> web.Response:
    return web.json_response(RequestError(message, status=status, kind=kind).body(), status=status)


class EngineServer:
    """One emulated vLLM engine."""

    def __init__(self, flags: EngineFlags, env: EmulatorEnv, plugins: LoadedPlugins) -> None:
        self.flags = flags
        self.env = env
        self.plugins = plugins
        capacity = kv_capacity_tokens(
            gpu_memory_gib=env.gpu_memory_gib,
            gpu_memory_utilization=flags.gpu_memory_utilization,
            tensor_parallel_size=flags.tensor_parallel_size,
        )
        if capacity <= 0:
            raise StartupError(
                "No available memory for the cache blocks. Try increasing "
                "`gpu_memory_utilization` when initializing the engine."
            )
        if capacity < flags.max_model_len:
            raise StartupError(
                f"The model's max seq len ({flags.max_model_len}) is larger than the maximum number "
                f"of tokens that can be stored in KV cache ({capacity}). Try increasing "
                "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."
            )
        self.params = TimingParams(
            kv_capacity_tokens=capacity,
            max_num_seqs=flags.max_num_seqs,
            max_num_batched_tokens=flags.max_num_batched_tokens,
        )
        self.scheduler = EngineScheduler(BatchModel(self.params), speed=env.speed)
        self.metrics = EngineMetrics(flags.served_model_names[0])
        self.faults = FaultState(env.faults)
        self.ctx = ProtocolContext(
            served_model_names=flags.served_model_names,
            max_model_len=flags.max_model_len,
            enable_auto_tool_choice=flags.enable_auto_tool_choice,
            render_chat=plugins.render_chat,
        )
        self.ready_at = time.monotonic() + env.startup_seconds
        self.draining = False
        self.inflight = 0
        self.chunks_sent = 0
        self.aborted = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._created = int(time.time())

    # --- routing ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.flags.api_keys and request.path.startswith("/v1"):
            given = request.headers.get("Authorization", "")
            if given not in {f"Bearer {key}" for key in self.flags.api_keys}:
                return web.json_response({"error": "Unauthorized"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    def ready(self) -> bool:
        return time.monotonic() >= self.ready_at

    async def health(self, request: web.Request) -> web.Response:
        if self.draining or not self.ready():
            return web.Response(status=503)
        return web.Response(status=200)

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": EMULATOR_VERSION})

    async def metrics_page(self, request: web.Request) -> web.Response:
        model = self.scheduler.model
        self.metrics.set_load(
            running=model.num_running if self.env.speed else self.inflight,
            waiting=model.num_waiting,
            kv_usage=model.kv_usage,
        )
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def models(self, request: web.Request) -> web.Response:
        data: list[dict[str, Any]] = [
            {
                "id": name,
                "object": "model",
                "created": self._created,
                "owned_by": "vllm",
                "root": self.flags.model,
                "parent": None,
                "max_model_len": self.flags.max_model_len,
                "permission": [],
            }
            for name in self.flags.served_model_names
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._completion(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._completion(request, chat=False)

    # --- completions -----------------------------------------------------------------------

    async def _completion(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        if self.draining:
            return _error("The server is shutting down.", 503, "ServiceUnavailableError")
        if not self.ready():
            return _error("The model is still loading.", 503, "ServiceUnavailableError")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error("The request body is not valid JSON.", 400, "BadRequestError")
        if not isinstance(body, dict):
            return _error("The request body must be a JSON object.", 400, "BadRequestError")
        try:
            job = parse_chat(body, self.ctx) if chat else parse_completion(body, self.ctx)
        except RequestError as exc:
            # refused requests report what they carried too (a router test may send a bad one)
            received = {key: body[key] for key in SAMPLING_KEYS if key in body}
            return web.json_response(
                exc.body(), status=exc.status, headers={SAMPLING_HEADER: json.dumps(received)}
            )
        headers = {SAMPLING_HEADER: json.dumps(job.sampling), MODE_HEADER: job.mode}
        if self.faults.take_failure():
            response = _error("Injected fault: request failed.", 500, "InternalServerError")
            response.headers.update(headers)
            return response
        if self.faults.plan.stall:
            await asyncio.Event().wait()  # never set: the request hangs until the client leaves
        generation = plan_generation(job.generation)
        self.inflight += 1
        self._idle.clear()
        started = asyncio.get_running_loop().time()
        box = self.scheduler.submit(
            prompt_tokens=job.prompt_tokens, output_tokens=len(generation.pieces)
        )
        try:
            if job.stream:
                return await self._stream(request, job, generation, box, headers, started)
            return await self._whole(job, generation, box, headers, started)
        except ConnectionResetError:
            # the client left mid-stream: vLLM aborts the request; the finally frees its slot
            self.aborted += 1
            return web.Response(status=499)
        finally:
            self.scheduler.cancel(box)
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.set()

    def _record(self, job: Job, box: Outbox, started: float, finish_reason: str) -> None:
        now = asyncio.get_running_loop().time()
        if box.first_token_at is not None:
            self.metrics.observe_first_token(box.first_token_at - started)
        self.metrics.observe_finished(
            seconds=now - started,
            prompt_tokens=job.prompt_tokens,
            generation_tokens=box.released,
            finish_reason=finish_reason,
        )

    async def _whole(
        self,
        job: Job,
        generation: Generation,
        box: Outbox,
        headers: dict[str, str],
        started: float,
    ) -> web.Response:
        while not box.done:
            await box.wait_beyond(box.released)
        usage_body = usage(job.prompt_tokens, len(generation.pieces))
        if job.chat:
            body = chat_response(
                model=job.model,
                text=generation.text,
                finish_reason=generation.finish_reason,
                parse_reasoning=self.plugins.parse_reasoning,
                parse_tools=job.tools_requested,
                usage_body=usage_body,
                stop_reason=generation.stop_reason,
            )
        else:
            body = completion_response(
                model=job.model,
                text=generation.text,
                finish_reason=generation.finish_reason,
                usage_body=usage_body,
                stop_reason=generation.stop_reason,
            )
        self._record(job, box, started, generation.finish_reason)
        return web.json_response(body, headers=headers)

    async def _stream(
        self,
        request: web.Request,
        job: Job,
        generation: Generation,
        box: Outbox,
        headers: dict[str, str],
        started: float,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        writer = ChunkWriter(chat=job.chat, model=job.model)
        shaper = OutputStream(
            parse_reasoning=job.chat and self.plugins.parse_reasoning,
            parse_tools=job.tools_requested,
        )
        pending: list[bytes] = []
        if job.chat:
            pending.append(writer.choice({"role": "assistant", "content": ""}))
        sent = 0
        pieces = generation.pieces
        while True:
            await box.wait_beyond(sent)
            text = "".join(pieces[sent : box.released])
            sent = box.released
            if job.chat:
                pending += [writer.choice(delta) for delta in shaper.push(text)]
            elif text:
                pending.append(writer.choice({"text": text}))
            if box.done:
                break
            await self._write(response, pending)
            pending = []
        finish_reason = generation.finish_reason
        if job.chat:
            pending += [writer.choice(delta) for delta in shaper.finish()]
            if shaper.tools_called:
                finish_reason = "tool_calls"
            pending.append(
                writer.choice({}, finish_reason=finish_reason, stop_reason=generation.stop_reason)
            )
        else:
            pending.append(
                writer.choice(
                    {"text": ""}, finish_reason=finish_reason, stop_reason=generation.stop_reason
                )
            )
        if job.include_usage:
            pending.append(writer.usage_chunk(usage(job.prompt_tokens, len(pieces))))
        pending.append(writer.done())
        await self._write(response, pending)
        await response.write_eof()
        self._record(job, box, started, generation.finish_reason)
        return response

    async def _write(self, response: web.StreamResponse, chunks: list[bytes]) -> None:
        if not chunks:
            return
        limit = self.env.faults.die_after_chunks
        if limit is not None and self.chunks_sent + len(chunks) >= limit:
            chunks = chunks[: max(0, limit - self.chunks_sent)]
            await response.write(b"".join(chunks))
            print("emulator: injected fault: dying mid-stream", file=sys.stderr, flush=True)
            os._exit(1)
        self.chunks_sent += len(chunks)
        await response.write(b"".join(chunks))

    # --- lifecycle -------------------------------------------------------------------------

    async def drain(self, seconds: float) -> bool:
        """Refuse new requests and wait for those in flight; False if some were cut off."""
        self.draining = True
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


async def serve(flags: EngineFlags, env: EmulatorEnv, plugins: LoadedPlugins) -> int:
    """Run until SIGTERM or SIGINT, then drain and return the exit status."""
    server = EngineServer(flags, env, plugins)
    # The drain below does the graceful part; aiohttp's own wait would add up to 60 s more.
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, shutdown_timeout=0.1
    )
    await runner.setup()
    host = flags.host or "127.0.0.1"
    site = web.TCPSite(runner, host=host, port=flags.port, backlog=4096)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"emulator: cannot listen on {host}:{flags.port}: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scheduler = asyncio.create_task(server.scheduler.run())
    print(
        f"INFO: emulated vLLM engine serving {', '.join(flags.served_model_names)} on "
        f"http://{host}:{flags.port} (kv cache {server.params.kv_capacity_tokens} tokens, "
        f"max_num_seqs {flags.max_num_seqs}, speed {env.speed})",
        flush=True,
    )
    await stop.wait()
    print(f"INFO: shutting down, draining for up to {flags.shutdown_timeout}s", flush=True)
    drained = await server.drain(flags.shutdown_timeout)
    if not drained:
        print(f"INFO: {server.inflight} request(s) still running were aborted", flush=True)
    scheduler.cancel()
    await asyncio.gather(scheduler, return_exceptions=True)
    await runner.cleanup()
    return 0

"""The router's HTTP/1.1 server (router/httpserver.py) over real loopback sockets, driven by a
raw-bytes client so each test controls framing and timing: keep-alive and pipelining, the
body limit (413 with the body still read, so the client sees the answer), 100-continue, 431,
400, chunked streaming as written, HTTP/1.0, disconnect cancels the handler, draining, a
failing handler. A property test feeds arbitrary bytes and checks the server keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httptools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nemotron_operator.router.httpserver import HttpServer, Request, Responder
from nemotron_operator.router.upstream import forwarded_request_headers
from tests.support.waiting import await_for

LIMIT = 1000


_clients: list[asyncio.StreamWriter] = []


@asynccontextmanager
async def serving(
    handler: Callable[[Request, Responder], Awaitable[None]], **kwargs: object
) -> AsyncIterator[tuple[HttpServer, int]]:
    server = HttpServer(handler, body_limit=lambda: LIMIT, **kwargs)  # type: ignore[arg-type]
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.close()
        while _clients:  # every test client closed before its loop ends
            writer = _clients.pop()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def echo(request: Request, out: Responder) -> None:
    if request.too_large:
        out.send(413, b'{"error":"too large"}')
        return
    body = b"%s %s %s" % (request.method.encode(), request.path.encode(), request.body)
    out.send(200, body, [(b"X-Seen-Host", request.headers.get("host", "").encode())], b"text/plain")


class Answer:
    """One parsed answer: status, headers (lower-case names), body."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.pieces: list[bytes] = []

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


class Answers:
    """httptools callbacks collecting every answer on one connection."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Answer] = []
        self.current = Answer()

    def on_message_begin(self) -> None:
        self.current = Answer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.current.pieces.append(body)

    def on_message_complete(self) -> None:
        self.done.append(self.current)


async def read_answers(reader: asyncio.StreamReader, count: int) -> list[Answer]:
    answers = Answers()
    async with asyncio.timeout(5):
        while len(answers.done) < count:
            data = await reader.read(65536)
            assert data, "connection closed before the answers were complete"
            answers.parser.feed_data(data)
    return answers.done


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    _clients.append(writer)
    return reader, writer


def post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\n%s\r\n"
    return head % (path, len(body), extra) + body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async with serving(echo) as (server, port):
        reader, writer = await connect(port)
        writer.write(post(b"/a", b"one"))
        (first,) = await read_answers(reader, 1)
        assert (first.status, first.body) == (200, b"POST /a one")
        assert first.headers[b"content-length"] == b"11"
        assert first.headers[b"x-seen-host"] == b"r"
        writer.write(post(b"/b", b"two") + post(b"/c", b"three"))  # pipelined, one write
        second, third = await read_answers(reader, 2)
        assert (second.body, third.body) == (b"POST /b two", b"POST /c three")
        assert len(server.connections) == 1
        writer.close()


async def test_nothing_is_served_after_an_answer_that_closes() -> None:
    async with serving(echo) as (_, port):
        reader, writer = await connect(port)
        writer.write(post(b"/a", b"1", b"Connection: close\r\n") + post(b"/b", b"2"))
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.count(b"HTTP/1.1 200 ") == 1
        assert data.endswith(b"POST /a 1")


async def test_body_over_the_limit_is_413_and_the_client_reads_the_answer() -> None:
    async with serving(echo) as (_, port):
        reader, writer = await connect(port)
        writer.write(post(b"/a", b"x" * (LIMIT * 50)))
        (answer,) = await read_answers(reader, 1)
        assert answer.status == 413
        assert answer.headers[b"connection"] == b"close"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then closed
        # Chunked, no declared length: flagged once the streamed size passes the limit.
        reader, writer = await connect(port)
        piece = b"y" * 600
        writer.write(
            b"POST /a HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"%x\r\n%s\r\n" % (len(piece), piece)) * 3
            + b"0\r\n\r\n"
        )
        (answer,) = await read_answers(reader, 1)
        assert answer.status == 413


async def test_expect_continue_is_answered_before_the_body() -> None:
    async with serving(echo) as (_, port):
        reader, writer = await connect(port)
        writer.write(
            b"POST /a HTTP/1.1\r\nHost: r\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert line == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        (answer,) = await read_answers(reader, 1)
        assert answer.body == b"POST /a body"


async def test_oversized_head_is_431_and_garbage_is_400() -> None:
    async with serving(echo, max_head_bytes=512) as (_, port):
        reader, writer = await connect(port)
        writer.write(b"GET /a HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 431 ")
        assert b'"code": "headers_too_large"' in data
        reader, writer = await connect(port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 400 ")
        assert b'"type": "invalid_request_error"' in data


async def test_streamed_pieces_reach_the_client_as_written() -> None:
    release = asyncio.Event()

    async def streamer(request: Request, out: Responder) -> None:
        out.start(200, [(b"Content-Type", b"text/event-stream")])
        await out.write(b"data: 1\n\n")
        await release.wait()
        await out.write(b"data: 2\n\n")
        out.end()

    async with serving(streamer) as (_, port):
        reader, writer = await connect(port)
        writer.write(post(b"/s", b"{}"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"Transfer-Encoding: chunked" in head
        expected = b"9\r\ndata: 1\n\n\r\n"
        first = await asyncio.wait_for(reader.readexactly(len(expected)), 5)
        assert first == expected  # the first event, framed, while the rest waits
        release.set()
        rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        assert rest == b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"
        # HTTP/1.0 has no chunked framing: raw bytes, then the connection closes.
        release.clear()
        reader, writer = await connect(port)
        writer.write(b"POST /s HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
        await asyncio.wait_for(reader.readuntil(b"data: 1\n\n"), 5)
        release.set()
        rest = await asyncio.wait_for(reader.read(), 5)
        assert rest == b"data: 2\n\n"


async def test_client_disconnect_cancels_the_handler() -> None:
    state = {"started": False, "cancelled": False}

    async def waits(request: Request, out: Responder) -> None:
        state["started"] = True
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async with serving(waits) as (_, port):
        _, writer = await connect(port)
        writer.write(post(b"/w", b""))
        await await_for(lambda: asyncio.sleep(0, state["started"]), 5, what="handler running")
        writer.close()
        await await_for(lambda: asyncio.sleep(0, state["cancelled"]), 5, what="handler cancelled")


async def test_draining_refuses_connections_and_closes_after_the_answer() -> None:
    release = asyncio.Event()
    running = asyncio.Event()

    async def slow(request: Request, out: Responder) -> None:
        running.set()
        await release.wait()
        out.send(200, b"done")

    async with serving(slow) as (server, port):
        idle_reader, _ = await connect(port)
        busy_reader, busy = await connect(port)
        busy.write(post(b"/x", b""))
        await asyncio.wait_for(running.wait(), 5)
        await await_for(lambda: asyncio.sleep(0, len(server.connections) == 2), 5, what="both")
        await server.stop_listening()
        assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # the idle one is closed
        refused = False
        try:
            await connect(port)
        except OSError:
            refused = True
        assert refused
        release.set()
        (answer,) = await read_answers(busy_reader, 1)
        assert (answer.status, answer.body) == (200, b"done")
        assert answer.headers[b"connection"] == b"close"


async def test_a_failing_handler_is_a_500_error_object() -> None:
    async def broken(request: Request, out: Responder) -> None:
        raise RuntimeError("bug")

    async with serving(broken) as (_, port):
        reader, writer = await connect(port)
        writer.write(post(b"/x", b""))
        (answer,) = await read_answers(reader, 1)
        assert answer.status == 500
        assert b'"code": "internal_error"' in answer.body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_stop_the_server(junk: bytes) -> None:
    async def scenario() -> None:
        async with serving(echo) as (_, port):
            reader, writer = await connect(port)
            writer.write(junk)
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 5)  # answered or closed, never hung
            writer.close()
            reader, writer = await connect(port)  # and the next client is served
            writer.write(post(b"/ok", b"1"))
            (answer,) = await read_answers(reader, 1)
            assert answer.body == b"POST /ok 1"
            writer.close()

    asyncio.run(scenario())


@given(st.dictionaries(st.sampled_from([b"x-request-id", b"traceparent", b"authorization",
                                        b"accept"]), st.binary(max_size=40)))  # fmt: skip
def test_engine_headers_never_carry_the_key_or_injected_lines(headers: dict[bytes, bytes]) -> None:
    rendered = forwarded_request_headers(headers)
    lines = rendered.split(b"\r\n")
    assert lines[-1] == b""
    assert lines[0] == b"Content-Type: application/json"
    for line in lines[1:-1]:
        name, _, _ = line.partition(b": ")
        assert name in (b"x-request-id", b"traceparent", b"accept")
        assert b"\n" not in line
        assert b"\r" not in line

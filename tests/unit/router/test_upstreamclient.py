"""The router's engine HTTP/1.1 client (``router.upstreamclient``) over real loopback sockets.

Each test scripts its own engine with ``asyncio.start_server`` and raw bytes, so framing
(Content-Length, chunked, close-delimited), timing (a stream held on an ``asyncio.Event``) and
faults (a connection closed while idle, after a request, mid-body) are exactly what the test
says. The server records accepted connections and the requests each one carried, so pooling
and retries are observed from the engine's side, as the router's engines would see them.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import cast

import pytest

from nemotron_operator.router import upstreamclient
from nemotron_operator.router.upstreamclient import (
    Exchange,
    UpstreamClient,
    UpstreamError,
    request_head,
)
from tests.support.waiting import await_for

# Every test is a few round trips on loopback; this only stops a hung test early.
pytestmark = pytest.mark.timeout(10)

OK_HEAD = b"HTTP/1.1 200 OK\r\n"


@dataclass
class Peer:
    """The server's side of one accepted connection."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: list[bytes] = field(default_factory=list)
    eof: asyncio.Event = field(default_factory=asyncio.Event)

    async def read_request(self) -> bytes:
        """One whole request (head and Content-Length body), recorded in ``requests``."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = head + await self.reader.readexactly(length)
        self.requests.append(request)
        return request

    async def answer(self, body: bytes, extra: bytes = b"") -> None:
        self.writer.write(OK_HEAD + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await self.writer.drain()

    async def wait_eof(self) -> None:
        """Until the client closes its side (EOF or reset); then ``eof`` is set."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.eof.set()


Script = Callable[[Peer], Awaitable[None]]


@dataclass
class Engine:
    """A scripted loopback engine: ``script`` runs once per accepted connection."""

    script: Script
    origin: str = ""
    peers: list[Peer] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def accepted(self) -> int:
        return len(self.peers)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        peer = Peer(len(self.peers), reader, writer)
        self.peers.append(peer)
        try:
            await self.script(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what some tests do on purpose
        except asyncio.CancelledError:
            # Only the teardown cancels a handler. Returning rather than raising: 3.11's
            # start_server calls exception() on a cancelled handler task and logs an error.
            pass
        except BaseException as exc:  # a failed assertion in a script fails the test at exit
            self.failures.append(exc)
        finally:
            writer.close()


@asynccontextmanager
async def engine(script: Script) -> AsyncIterator[Engine]:
    found = Engine(script)
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    found.origin = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        server.close()
        # Python 3.11's wait_closed does not wait for handlers: end them here, so no transport
        # is left for the garbage collector to warn about (warnings are errors in this suite).
        for task in found.tasks:
            task.cancel()
        await asyncio.gather(*found.tasks, return_exceptions=True)
        await server.wait_closed()
    if found.failures:
        raise found.failures[0]


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    made = UpstreamClient(connect_timeout=1.0)
    yield made
    await made.close()


def head(origin: str, body: bytes = b"", path: bytes = b"/v1/completions") -> bytes:
    host = origin.removeprefix("http://").encode()
    return request_head(b"POST", path, host, b"Content-Type: application/json\r\n", len(body))


async def post(client: UpstreamClient, origin: str, body: bytes) -> tuple[Exchange, bytes]:
    exchange = await client.open(origin, head(origin, body), body)
    return exchange, await exchange.read()


async def consume(exchange: Exchange, how: str, pieces: list[bytes]) -> None:
    """The body by ``read()`` or ``chunks()``; pieces that came are kept in ``pieces``."""
    if how == "read":
        pieces.append(await exchange.read())
        return
    async for piece in exchange.chunks():
        pieces.append(piece)


async def answer_each(peer: Peer) -> None:
    """Answer every request on the connection with ``<connection index>:<request body>``."""
    while True:
        request = await peer.read_request()
        await peer.answer(b"%d:%s" % (peer.index, request.partition(b"\r\n\r\n")[2]))


def _true(value: object) -> Awaitable[bool]:
    """``await_for`` takes a coroutine predicate: wrap a plain condition in one."""

    async def done() -> bool:
        return bool(value)

    return done()


# -- Content-Length answers and pooling ---------------------------------------------------------


async def test_content_length_answer_is_read_whole_and_the_connection_reused(
    client: UpstreamClient,
) -> None:
    async def script(peer: Peer) -> None:
        while True:
            request = await peer.read_request()
            body = request.partition(b"\r\n\r\n")[2]
            await peer.answer(b"echo " + body, extra=b"X-Engine: e1\r\n")

    async with engine(script) as server:
        exchange, data = await post(client, server.origin, b'{"n": 1}')
        assert (exchange.status, data) == (200, b'echo {"n": 1}')
        assert (b"X-Engine", b"e1") in exchange.headers
        assert exchange.complete
        assert exchange.keep_alive

        exchange, data = await post(client, server.origin, b'{"n": 2}')
        assert data == b'echo {"n": 2}'
        assert server.accepted == 1  # the second request went over the first connection
        [peer] = server.peers
        assert len(peer.requests) == 2
        assert peer.requests[1].startswith(b"POST /v1/completions HTTP/1.1\r\n")
        assert b"\r\nContent-Length: 8\r\n" in peer.requests[1]
        assert b"\r\nHost: 127.0.0.1:" in peer.requests[1]


async def test_large_request_body_arrives_whole(client: UpstreamClient) -> None:
    # Bodies from 64 KiB are written after the head, not concatenated with it.
    body = random.Random(1).randbytes(200_000)

    async with engine(answer_each) as server:
        _, data = await post(client, server.origin, body)
        assert data == b"0:" + body


async def test_connection_close_answer_is_not_pooled(client: UpstreamClient) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.answer(b"bye", extra=b"Connection: close\r\n")
        await peer.wait_eof()

    async with engine(script) as server:
        exchange, data = await post(client, server.origin, b"1")
        assert data == b"bye"
        assert not exchange.keep_alive
        await asyncio.wait_for(server.peers[0].eof.wait(), 2)  # the client closed its side
        _, data = await post(client, server.origin, b"2")
        assert data == b"bye"
        assert server.accepted == 2


async def test_get_gives_status_and_body(client: UpstreamClient) -> None:
    async def script(peer: Peer) -> None:
        request = await peer.reader.readuntil(b"\r\n\r\n")
        peer.requests.append(request)
        peer.writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown")
        await peer.writer.drain()
        await peer.wait_eof()

    async with engine(script) as server:
        assert await client.get(server.origin, "/metrics") == (503, b"down")
        assert server.peers[0].requests[0].startswith(b"GET /metrics HTTP/1.1\r\nHost: ")


# -- chunked and close-delimited answers ---------------------------------------------------------


async def test_chunked_answer_streams_pieces_as_the_server_writes_them(
    client: UpstreamClient,
) -> None:
    release = asyncio.Event()
    holding = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n")
        await peer.writer.drain()
        holding.set()
        await release.wait()  # the rest of the answer waits for the test
        peer.writer.write(b"7\r\nsecond\n\r\n6\r\nthird\n\r\n0\r\n\r\n")
        await peer.writer.drain()
        await answer_each(peer)

    async with engine(script) as server:
        exchange = await client.open(server.origin, head(server.origin))
        pieces = exchange.chunks()
        assert await asyncio.wait_for(anext(pieces), 2) == b"first\n"
        # The first piece came while the server still holds the rest: nothing is buffered.
        assert holding.is_set()
        assert not release.is_set()
        assert not exchange.complete

        release.set()
        rest = [piece async for piece in pieces]
        assert b"".join(rest) == b"second\nthird\n"
        assert exchange.complete
        exchange.release()

        _, data = await post(client, server.origin, b"next")
        assert data == b"0:next"
        assert server.accepted == 1  # a chunked answer keeps the connection


@pytest.mark.parametrize("how", ["read", "chunks"])
async def test_close_delimited_answer_is_read_to_the_connection_end(
    client: UpstreamClient, how: str
) -> None:
    async def script(peer: Peer) -> None:
        if peer.index > 0:
            await answer_each(peer)
            return
        await peer.read_request()
        peer.writer.write(OK_HEAD + b"Content-Type: text/plain\r\n\r\nno length, ")
        await peer.writer.drain()
        peer.writer.write(b"no chunks: until the end")
        await peer.writer.drain()
        # returning closes the connection: that is the answer's end

    async with engine(script) as server:
        exchange = await client.open(server.origin, head(server.origin))
        if how == "read":
            data = await exchange.read()
        else:
            data = b"".join([piece async for piece in exchange.chunks()])
            exchange.release()
        assert data == b"no length, no chunks: until the end"
        assert exchange.complete
        assert exchange.error is None
        assert not exchange.keep_alive

        _, data = await post(client, server.origin, b"again")
        assert data == b"1:again"
        assert server.accepted == 2  # that connection was not pooled


# -- failures -----------------------------------------------------------------------------------


async def test_connect_refused_is_upstream_error_at_once(client: UpstreamClient) -> None:
    # A bound socket that does not listen: the port is ours and connecting to it is refused.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        origin = f"http://127.0.0.1:{bound.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="failed"):
            await client.open(origin, head(origin))
        assert time.monotonic() - started < 0.9  # refused, not the 1 s connect timeout


async def test_connect_timeout_is_upstream_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never_connects(*args: object, **kwargs: object) -> object:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", never_connects)
    slow = UpstreamClient(connect_timeout=0.05)
    origin = "http://127.0.0.1:9"
    with pytest.raises(UpstreamError, match="timed out"):
        await slow.open(origin, head(origin))


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("how", ["read", "chunks"])
async def test_body_cut_short_is_upstream_error(
    client: UpstreamClient, framing: str, how: str
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        if framing == "content-length":
            peer.writer.write(OK_HEAD + b"Content-Length: 100\r\n\r\nonly ten..")
        else:
            peer.writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\na\r\nonly ten..\r\n")
        await peer.writer.drain()
        peer.writer.transport.abort()  # gone mid-body

    async with engine(script) as server:
        exchange = await client.open(server.origin, head(server.origin))
        pieces: list[bytes] = []
        with pytest.raises(UpstreamError, match="closed"):
            await consume(exchange, how, pieces)
        exchange.close()
        assert b"".join(pieces) in (b"", b"only ten..")
        assert not exchange.complete


async def test_server_closing_before_answering_a_fresh_connection_is_not_retried(
    client: UpstreamClient,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()  # and close without a word

    async with engine(script) as server:
        with pytest.raises(UpstreamError):
            await client.open(server.origin, head(server.origin))
        assert server.accepted == 1


async def test_malformed_answer_is_upstream_error(client: UpstreamClient) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(b"this is not HTTP\r\n\r\n")
        await peer.writer.drain()
        await peer.wait_eof()

    async with engine(script) as server:
        with pytest.raises(UpstreamError):
            await client.open(server.origin, head(server.origin))
        await asyncio.wait_for(server.peers[0].eof.wait(), 2)  # and the connection is dropped


# -- pooled connections that went stale ----------------------------------------------------------


async def test_connection_closed_while_idle_is_not_reused(client: UpstreamClient) -> None:
    idle_closed = asyncio.Event()

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            request = await peer.read_request()
            await peer.answer(b"first:" + request.partition(b"\r\n\r\n")[2])
            peer.writer.close()  # an idle keep-alive timeout, as uvicorn's
            await peer.writer.wait_closed()
            idle_closed.set()
            return
        await answer_each(peer)

    async with engine(script) as server:
        _, data = await post(client, server.origin, b"1")
        assert data == b"first:1"
        await asyncio.wait_for(idle_closed.wait(), 2)
        [stale] = client._idle[server.origin]
        await await_for(lambda: _true(stale.closed), 2, what="the client saw the close")
        # The client saw the close: the parked connection is skipped, not tried.
        exchange, data = await post(client, server.origin, b"2")
        assert data == b"1:2"
        assert exchange._connection is not stale
        assert server.accepted == 2
        assert len(server.peers[0].requests) == 1


async def test_connection_closing_as_the_request_is_sent_is_retried(
    client: UpstreamClient,
) -> None:
    # The race an idle timeout makes: the engine closes a kept-alive connection in the same
    # moment the client picks it for a request. The send "succeeds", then the connection
    # fails before any answer byte, and the request goes to a fresh connection.
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.answer(b"first")
            await peer.wait_eof()
            return
        await answer_each(peer)

    async with engine(script) as server:
        first, _ = await post(client, server.origin, b"1")
        reused = first._connection
        server.peers[0].writer.transport.abort()  # closes on the loop's next turn...
        opening = asyncio.ensure_future(client.open(server.origin, head(server.origin, b"2"), b"2"))
        await asyncio.sleep(0)  # ...while open() writes on the connection before then
        assert reused.exchange is not None  # it took the stale one...
        assert not reused.closed  # ...before seeing it close
        exchange = await asyncio.wait_for(opening, 2)
        assert await exchange.read() == b"1:2"
        assert exchange._connection is not reused
        assert reused.closed
        assert server.accepted == 2


async def test_kept_alive_connection_closed_after_the_request_is_retried_once(
    client: UpstreamClient,
) -> None:
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.answer(b"first")
            await peer.read_request()  # the next request: close without answering it
            return
        await answer_each(peer)

    async with engine(script) as server:
        assert (await post(client, server.origin, b"a"))[1] == b"first"
        _, data = await post(client, server.origin, b"b")
        assert data == b"1:b"  # answered on a fresh connection
        assert server.accepted == 2
        assert [r.partition(b"\r\n\r\n")[2] for r in server.peers[0].requests] == [b"a", b"b"]
        assert [r.partition(b"\r\n\r\n")[2] for r in server.peers[1].requests] == [b"b"]


async def test_retry_on_a_fresh_connection_happens_once(client: UpstreamClient) -> None:
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.answer(b"first")
        await peer.read_request()  # then close: on the reused connection and the fresh one

    async with engine(script) as server:
        await post(client, server.origin, b"a")
        with pytest.raises(UpstreamError):
            await client.open(server.origin, head(server.origin, b"b"), b"b")
        assert server.accepted == 2


async def test_reused_connection_failing_mid_answer_is_not_retried(
    client: UpstreamClient,
) -> None:
    # Part of an answer came: the engine took the request, so sending it again is not safe.
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.answer(b"first")
        await peer.read_request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        await peer.writer.drain()

    async with engine(script) as server:
        await post(client, server.origin, b"a")
        with pytest.raises(UpstreamError):
            await client.open(server.origin, head(server.origin, b"b"), b"b")
        assert server.accepted == 1


async def test_idle_connections_older_than_idle_seconds_are_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fake clock for the module only (the event loop keeps the real one).
    now = [1000.0]
    monkeypatch.setattr(upstreamclient, "time", SimpleNamespace(monotonic=lambda: now[0]))
    client = UpstreamClient(connect_timeout=1.0, idle_seconds=4.0)

    async def script(peer: Peer) -> None:
        try:
            await answer_each(peer)
        finally:
            peer.eof.set()  # the client closed the connection

    try:
        async with engine(script) as server:
            assert (await post(client, server.origin, b"a"))[1] == b"0:a"  # parked at 1000
            now[0] += 3.9
            assert (await post(client, server.origin, b"b"))[1] == b"0:b"  # parked at 1003.9
            assert server.accepted == 1
            now[0] += 4.1
            assert (await post(client, server.origin, b"c"))[1] == b"1:c"
            assert server.accepted == 2
            # ...and the stale one was closed by the client, not left open.
            await asyncio.wait_for(server.peers[0].eof.wait(), 2)
            assert not server.peers[1].eof.is_set()
    finally:
        await client.close()


async def test_client_close_closes_idle_connections(client: UpstreamClient) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.answer(b"x")
        await peer.wait_eof()

    async with engine(script) as server:
        await post(client, server.origin, b"a")
        await client.close()
        await asyncio.wait_for(server.peers[0].eof.wait(), 2)
        # A connection released after close is closed, not parked.
        await post(client, server.origin, b"b")
        await asyncio.wait_for(server.peers[1].eof.wait(), 2)
        assert not client._idle


# -- aborting at the engine ---------------------------------------------------------------------


async def test_exchange_close_mid_stream_closes_the_engine_connection(
    client: UpstreamClient,
) -> None:
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            peer.writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\ntoken\r\n")
            await peer.writer.drain()
            await peer.wait_eof()  # mid-answer: more tokens would follow
            return
        await answer_each(peer)

    async with engine(script) as server:
        exchange = await client.open(server.origin, head(server.origin))
        pieces = cast(AsyncGenerator[bytes, None], exchange.chunks())
        assert await asyncio.wait_for(anext(pieces), 2) == b"token"
        exchange.close()
        await pieces.aclose()
        await asyncio.wait_for(server.peers[0].eof.wait(), 2)  # the engine sees the abort
        assert (await post(client, server.origin, b"n"))[1] == b"1:n"  # and it is not pooled


@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
async def test_cancelling_open_closes_the_engine_connection(
    client: UpstreamClient, reused: bool
) -> None:
    async def script(peer: Peer) -> None:
        if reused:
            await peer.read_request()
            await peer.answer(b"first")
        await peer.read_request()
        await peer.wait_eof()  # never answers: the request is "generating"

    async with engine(script) as server:
        if reused:
            await post(client, server.origin, b"a")
        expected = 2 if reused else 1
        task = asyncio.create_task(client.open(server.origin, head(server.origin, b"b"), b"b"))
        await await_for(
            lambda: _true(server.peers and len(server.peers[0].requests) == expected),
            2,
            what="the engine got the request",
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server.peers[0].eof.wait(), 2)
        assert server.accepted == 1


# -- flow control -------------------------------------------------------------------------------


async def test_a_slow_consumer_pauses_reading_and_gets_every_byte_in_order(
    client: UpstreamClient,
) -> None:
    # Far more than the client's high-water mark plus what loopback socket buffers hold.
    payload = random.Random(7).randbytes(48 * 1024 * 1024)
    written = [0]
    finished = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.read_request()
        peer.writer.write(OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(payload))
        view = memoryview(payload)
        for start in range(0, len(payload), 65536):
            peer.writer.write(view[start : start + 65536])
            await peer.writer.drain()  # blocks while the client is not reading
            written[0] = start + 65536
            await asyncio.sleep(0)  # let the client's side run between writes
        finished.set()
        await answer_each(peer)

    async with engine(script) as server:
        exchange = await client.open(server.origin, head(server.origin))
        pieces = exchange.chunks()
        received = [await asyncio.wait_for(anext(pieces), 2)]
        # Not reading: the client stops reading from the socket once it holds too much.
        await await_for(lambda: _true(exchange._paused), 2, what="client paused reading")
        limit = upstreamclient._HIGH_WATER + 256 * 1024  # plus at most one socket read
        assert exchange._size <= limit
        # The server is held back (its drain blocks), it has not got its answer out.
        await await_for(
            lambda: _true(server_blocked(server.peers[0].writer)), 2, what="server drain blocks"
        )
        assert not finished.is_set()
        assert written[0] < len(payload)

        async for piece in pieces:  # consuming resumes reading
            received.append(piece)
            assert exchange._size <= limit
        assert finished.is_set()
        assert b"".join(received) == payload
        assert not exchange._paused
        exchange.release()
        assert (await post(client, server.origin, b"z"))[1] == b"0:z"  # connection reused


def server_blocked(writer: asyncio.StreamWriter) -> bool:
    """The server's transport holds more than its high-water mark: drain() waits."""
    transport = writer.transport
    return transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]


# -- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    ["https://engine:8000", "ftp://engine", "http://", "engine:8000", "unix:///tmp/engine.sock"],
)
async def test_address_rejects_what_is_not_http_host_port(
    client: UpstreamClient, origin: str
) -> None:
    with pytest.raises(UpstreamError, match="unsupported engine URL"):
        client.address(origin)
    with pytest.raises(UpstreamError, match="unsupported engine URL"):
        await client.open(origin, b"GET / HTTP/1.1\r\n\r\n")


def test_address_gives_host_port_and_host_header() -> None:
    client = UpstreamClient()
    assert client.address("http://10.0.0.7:8000") == ("10.0.0.7", 8000, b"10.0.0.7:8000")
    assert client.address("http://engine-0.ns.svc") == ("engine-0.ns.svc", 80, b"engine-0.ns.svc")
    assert client.address("http://[::1]:9000") == ("::1", 9000, b"[::1]:9000")

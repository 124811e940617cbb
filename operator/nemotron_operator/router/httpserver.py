"""The router's HTTP/1.1 server: an asyncio protocol over the ``httptools`` (llhttp) parser.

Why not a framework: every request the router proxies pays the server's per-request cost,
and a general framework's (routing tables, middleware chains, request objects with lazy
properties, response classes) was the larger part of the router's CPU per request. This server
does only what the router needs:

- keep-alive connections, one request at a time per connection (a pipelined request waits,
  and reading pauses, until the one before it is answered);
- the whole request body read before the handler runs, bounded by ``body_limit()``: a larger
  declared or streamed body is handed to the handler as ``Request.too_large`` at once (the
  handler answers 413), the rest is read and dropped and the connection closes after the
  answer, so the client sees the answer rather than a reset;
- ``Expect: 100-continue`` answered; a request head over ``max_head_bytes`` gets 431, an
  unparsable one 400, then the connection closes;
- answers written whole (``Responder.send``) or streamed with chunked transfer encoding
  (``Responder.start``/``write``/``end``), each ``write`` one transport write, with the
  transport's flow control (a slow client pauses its stream rather than growing a buffer);
- a client that goes away cancels its handler (so the handler's engine request is dropped and
  the GPU stops generating);
- ``stop_listening`` for draining: no new connections, ``Connection: close`` on every answer
  from then on, idle keep-alive connections closed; ``close`` ends the rest.

Error bodies are OpenAI-shaped (``errors.error_body``). Used by ``server`` (the router's
handlers) and ``serve`` (lifecycle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus

import httptools

from nemotron_operator.router.errors import error_body

__all__ = ["HttpServer", "Request", "Responder"]

log = logging.getLogger(__name__)

Header = tuple[bytes, bytes]
Handler = Callable[["Request", "Responder"], Awaitable[None]]

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Past this many dropped body bytes after a 413, stop being polite and close.
_MAX_DISCARD = 64 * 1024 * 1024
_SWEEP_SECONDS = 5.0


class Request:
    """One parsed request. ``raw_headers`` maps lower-case header names to values, as bytes
    (repeated headers joined by ", "); ``header()`` decodes one, ``headers`` all of them."""

    __slots__ = ("body", "keep_alive", "method", "path", "raw_headers", "too_large")

    def __init__(
        self,
        method: str,
        path: str,
        raw_headers: dict[bytes, bytes],
        body: bytes,
        *,
        keep_alive: bool,
        too_large: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.raw_headers = raw_headers
        self.body = body
        self.keep_alive = keep_alive
        self.too_large = too_large

    def header(self, name: bytes) -> str | None:
        """One header's value (``name`` lower-case), or None."""
        value = self.raw_headers.get(name)
        return None if value is None else value.decode("latin-1")

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw_headers.items()}


def _head(status: int, headers: Iterable[Header], extra: bytes) -> bytes:
    reason = _REASONS.get(status, b"Unknown")
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
    lines.append(extra)
    return b"".join(lines)


class Responder:
    """Writes the answer to one request: whole (``send``) or streamed (``start``/``write``/``end``)."""

    __slots__ = ("_chunked", "_connection", "_keep_alive", "finished", "started", "status")

    def __init__(self, connection: _Connection, keep_alive: bool) -> None:
        self._connection = connection
        self._keep_alive = keep_alive
        self._chunked = True
        self.started = False
        self.finished = False
        self.status = 0

    def _connection_header(self) -> bytes:
        self._keep_alive = self._keep_alive and not self._connection.server.draining
        return b"" if self._keep_alive else b"Connection: close\r\n"

    def send(
        self,
        status: int,
        body: bytes,
        headers: Iterable[Header] = (),
        content_type: bytes = b"application/json",
    ) -> None:
        """The whole answer in one write."""
        assert not self.started, "answer already started"
        self.started = self.finished = True
        self.status = status
        extra = b"Content-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            content_type,
            len(body),
            self._connection_header(),
        )
        self._connection.write(_head(status, headers, extra) + body)

    def start(self, status: int, headers: Iterable[Header] = ()) -> None:
        """Send the head of a streamed answer (chunked; HTTP/1.0 clients: until close)."""
        assert not self.started, "answer already started"
        self.started = True
        self.status = status
        if self._connection.http11:
            extra = b"Transfer-Encoding: chunked\r\n%s\r\n" % self._connection_header()
        else:
            self._chunked = False
            self._keep_alive = False
            extra = b"Connection: close\r\n\r\n"
        self._connection.write(_head(status, headers, extra))

    async def write(self, data: bytes) -> None:
        """One piece of a streamed answer, written now; waits while the client is slow."""
        if not data:
            return
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        connection = self._connection
        connection.write(data)
        if connection.write_paused:
            await connection.drained()

    def end(self) -> None:
        """Finish a streamed answer."""
        if self.finished:
            return
        self.finished = True
        if self._chunked:
            self._connection.write(b"0\r\n\r\n")

    @property
    def keep_alive(self) -> bool:
        return self._keep_alive


class _Connection(asyncio.Protocol):
    """One client connection: parse, dispatch one request at a time, write answers."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.http11 = True
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._head_size = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._limit = 0
        self._too_large = False
        self._discarded = 0
        self._pending: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._close_after = False
        self._reading_paused = False
        self.last_active = time.monotonic()
        self.in_message = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        self._pending.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client left: stop its work (and its engine request)
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()  # its writer is being cancelled too (above)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported", "unsupported_upgrade")
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed HTTP request: {exc}", "bad_request")

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_message = True
        self._url = b""
        self._headers = {}
        self._head_size = 0
        self._body = []
        self._body_size = 0
        self._too_large = False
        self._discarded = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Lower-cased and stored as bytes; decoded only where a handler asks (Request.header).
        key = name.lower()
        seen = self._headers.get(key)
        self._headers[key] = value if seen is None else seen + b", " + value
        self._head_size += len(name) + len(value)
        self._check_head_size()

    def _check_head_size(self) -> None:
        if self._head_size > self.server.max_head_bytes:
            self._fail(431, "request head too large", "headers_too_large")
            raise httptools.HttpParserError("head too large")  # stops feed_data

    def on_headers_complete(self) -> None:
        self._check_head_size()  # a long URL and no header after it
        self.http11 = self.parser.get_http_version() == "1.1"
        self._limit = self.server.body_limit()
        headers = self._headers
        declared = -1
        length = headers.get(b"content-length")
        if length is not None:
            with contextlib.suppress(ValueError):
                declared = int(length)
        if declared > self._limit:
            self._overflow()
        elif self.transport is not None:
            expect = headers.get(b"expect")
            if expect is not None and expect.lower() == b"100-continue":
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            self._discarded += len(body)
            if self._discarded > _MAX_DISCARD and self.transport is not None:
                self.transport.close()
            return
        self._body_size += len(body)
        if self._body_size > self._limit:
            self._overflow()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        if self._close_after:
            # An answer said "Connection: close" (a 413 whose dropped body is now read, or a
            # request that asked for it): serve nothing more; close once that answer is out.
            if self._task is None or self._task.done():
                self._close()
            return
        self._queue(self._request())

    # -- dispatch -----------------------------------------------------------------------------

    def _overflow(self) -> None:
        """Body over the limit: let the handler answer now, drop the rest, then close."""
        self._too_large = True
        self._body = []
        self._close_after = True
        self._queue(self._request())

    def _request(self) -> Request:
        keep_alive = self.parser.should_keep_alive() and not self._close_after
        return Request(
            self.parser.get_method().decode("ascii", "replace"),
            self._url.decode("latin-1"),
            self._headers,
            b"".join(self._body),
            keep_alive=keep_alive,
            too_large=self._too_large,
        )

    def _queue(self, request: Request) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._serve(request))
        else:
            # Pipelined: answer in order; stop reading until this backlog is served.
            self._pending.append(request)
            if self.transport is not None and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()

    async def _serve(self, request: Request) -> None:
        while True:
            responder = Responder(self, request.keep_alive)
            try:
                await self.server.handler(request, responder)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.path)
                if not responder.started:
                    responder.send(500, error_body(message="internal router error",
                                                   type_="api_error", code="internal_error"))  # fmt: skip
                else:
                    self._close()
                    return
            if not responder.finished:
                responder.end()
            self.last_active = time.monotonic()
            if not responder.keep_alive or self._close_after or self.transport is None:
                self._close_after = True
                self._pending.clear()
                if not self.in_message:
                    self._close()
                elif self.transport is not None:
                    self._reading_paused = False
                    self.transport.resume_reading()  # drain the dropped body, then close
                return
            if not self._pending:
                if self._reading_paused and self.transport is not None:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return
            request = self._pending.popleft()

    # -- writing and closing ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def drained(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("client connection lost")
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()
        await self._drain

    def _fail(self, status: int, message: str, code: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self._task is not None and not self._task.done():
            # Bad bytes after a request being answered (llhttp also refuses data after
            # "Connection: close"): let that answer finish, serve nothing more, then close.
            self._close_after = True
            self._pending.clear()
            self.in_message = False
            self._reading_paused = True
            self.transport.pause_reading()
            return
        body = error_body(message=message, type_="invalid_request_error", code=code)
        extra = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        self.transport.write(_head(status, (), extra + b"Connection: close\r\n\r\n") + body)
        self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @property
    def handler_task(self) -> asyncio.Task[None] | None:
        return self._task if self._task is not None and not self._task.done() else None

    def idle(self) -> bool:
        return (self._task is None or self._task.done()) and not self.in_message

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class HttpServer:
    """Listens, hands each request to ``handler(request, responder)``; see module docstring."""

    def __init__(
        self,
        handler: Handler,
        *,
        body_limit: Callable[[], int],
        max_head_bytes: int = 64 * 1024,
        keepalive_seconds: float = 75.0,
        head_seconds: float = 60.0,
    ) -> None:
        self.handler = handler
        self.body_limit = body_limit
        self.max_head_bytes = max_head_bytes
        self.keepalive_seconds = keepalive_seconds
        self.head_seconds = head_seconds
        self.connections: set[_Connection] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int, *, backlog: int = 4096) -> int:
        """Listen on host:port (0: any free port); returns the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=backlog, reuse_address=True
        )
        self._sweeper = asyncio.create_task(self._sweep(), name="http-idle-sweep")
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        # One timer for all connections rather than one per request: close keep-alive
        # connections idle too long and heads that never complete (slow-loris).
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            now = time.monotonic()
            for connection in list(self.connections):
                quiet = now - connection.last_active
                idle_too_long = connection.idle() and quiet > self.keepalive_seconds
                if idle_too_long or (connection.in_message and quiet > self.head_seconds):
                    connection._close()

    async def stop_listening(self) -> None:
        """Draining: refuse new connections, close idle ones, say ``Connection: close``."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.idle():
                connection._close()

    async def close(self) -> None:
        """End everything: listener, sweeper, every connection (handlers are cancelled)."""
        if self._server is not None and self._server.is_serving():
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        handlers = [c.handler_task for c in self.connections if c.handler_task is not None]
        for connection in list(self.connections):
            connection.abort()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

"""The router's HTTP/1.1 client for engine traffic: pooled keep-alive connections per engine,
an asyncio protocol over the ``httptools`` (llhttp) response parser.

Why not a general client: it was the other half of the router's CPU per request (request and
response objects, header multidicts, cookie jars, tracing hooks, per-read timers). This one
does what relaying to an engine needs:

- ``UpstreamClient.open(origin, head_and_body)`` writes a request on an idle connection to that
  engine (or a new one, with a connect timeout) and returns an ``Exchange`` once the answer's
  head has arrived; ``Exchange.read()`` gives the whole body, ``Exchange.chunks()`` yields the
  body as it arrives (several reads that arrived together come as one piece) with flow control
  (reading from the engine pauses while the router holds more than ``_HIGH_WATER`` unsent);
- a connection goes back to the pool only when its answer was read to the end and both sides
  said keep-alive; ``Exchange.close()`` on anything else drops the connection, which is how a
  request is aborted at the engine (vLLM aborts a request whose connection closes);
- idle connections older than ``idle_seconds`` are not reused (uvicorn, vLLM's server, closes
  idle keep-alive connections after 5 s; reusing one that is closing races that close). A reused
  connection that fails before any byte of an answer is retried once on a fresh connection,
  because that failure says nothing about the engine;
- every failure before the answer's head, and a body cut short, is ``UpstreamError``.

Used by ``upstream`` (relaying requests) and ``server`` (scraping engine metrics).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

__all__ = ["Exchange", "UpstreamClient", "UpstreamError", "request_head"]

Header = tuple[bytes, bytes]

_HIGH_WATER = 1024 * 1024


class UpstreamError(Exception):
    """The engine could not be reached, or the exchange broke before its end."""


def request_head(method: bytes, path: bytes, host: bytes, headers: bytes, length: int) -> bytes:
    """An HTTP/1.1 request head; ``headers`` is pre-rendered ``Name: value\\r\\n`` lines."""
    return b"%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n" % (
        method,
        path,
        host,
        headers,
        length,
    )


class _Connection(asyncio.Protocol):
    """One connection to an engine; carries one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.received_any = False
        self.exchange: Exchange | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.exchange is not None:
            self.exchange._broken(exc)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.exchange is not None:
                self.exchange._broken(exc)
            self.close()

    def eof_received(self) -> bool | None:
        # An answer delimited by the connection's end (neither a length nor chunked) ends here.
        exchange = self.exchange
        if exchange is not None and exchange.head_done and not exchange.complete:
            framed = any(
                name.lower() in (b"content-length", b"transfer-encoding")
                for name, _ in exchange.headers
            )
            if not framed:
                exchange._complete(False)
        return None

    # httptools callbacks: forward to the current exchange.
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.exchange is not None:
            self.exchange.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.exchange is not None:
            self.exchange._head(self.parser.get_status_code(), self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange._body(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange._complete(self.parser.should_keep_alive())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Exchange:
    """One request/answer on a connection: status and headers, then the body."""

    __slots__ = (
        "_client",
        "_connection",
        "_origin",
        "_paused",
        "_pieces",
        "_size",
        "_streaming",
        "_waiter",
        "complete",
        "error",
        "head_done",
        "headers",
        "keep_alive",
        "status",
    )

    def __init__(self, client: UpstreamClient, origin: str, connection: _Connection) -> None:
        self._client = client
        self._origin = origin
        self._connection = connection
        self.status = 0
        self.headers: list[Header] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._pieces: deque[bytes] = deque()
        self._size = 0
        self._paused = False
        self._streaming = False
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the connection ----------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _head(self, status: int, keep_alive: bool) -> None:
        self.status = status
        self.keep_alive = keep_alive
        self.head_done = True
        self._wake()

    def _body(self, data: bytes) -> None:
        self._pieces.append(data)
        self._size += len(data)
        if self._streaming and self._size > _HIGH_WATER and not self._paused:
            transport = self._connection.transport
            if transport is not None:
                self._paused = True
                transport.pause_reading()
        self._wake()

    def _complete(self, keep_alive: bool) -> None:
        self.complete = True
        self.keep_alive = self.keep_alive and keep_alive
        self._wake()

    def _broken(self, exc: BaseException | None) -> None:
        if not self.complete and self.error is None:
            reason = f": {exc}" if exc else ""
            self.error = UpstreamError(f"engine connection closed{reason}")
        self._wake()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # -- used by the router -------------------------------------------------------------------

    async def wait_head(self) -> None:
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    def _take(self) -> bytes:
        data = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
        self._pieces.clear()
        self._size = 0
        if self._paused:
            transport = self._connection.transport
            if transport is not None:
                transport.resume_reading()
            self._paused = False
        return data

    async def read(self) -> bytes:
        """The whole body; then the connection goes back to the pool."""
        while not self.complete:
            if self.error is not None:
                raise self.error
            await self._wait()
        data = self._take()
        self.release()
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises ``UpstreamError`` if it is cut short."""
        self._streaming = True
        while True:
            if self._pieces:
                yield self._take()
                continue
            if self.complete:
                return
            if self.error is not None:
                raise self.error
            await self._wait()

    def release(self) -> None:
        """Done with this exchange: reuse the connection if the answer was read whole."""
        connection = self._connection
        if connection.exchange is not self:
            return
        connection.exchange = None
        if self.complete and self.keep_alive and not self._pieces and not connection.closed:
            self._client._park(self._origin, connection)
        else:
            connection.close()

    def close(self) -> None:
        """Abandon the exchange: the connection is closed (the engine aborts the request)."""
        self._broken(None)  # a reader still waiting on it wakes with UpstreamError
        connection = self._connection
        if connection.exchange is self:
            connection.exchange = None
        connection.close()


class UpstreamClient:
    """Connection pools per engine origin (``http://host:port``)."""

    def __init__(self, *, connect_timeout: float = 5.0, idle_seconds: float = 4.0) -> None:
        self.connect_timeout = connect_timeout
        self.idle_seconds = idle_seconds
        self._idle: dict[str, list[_Connection]] = {}
        self._addresses: dict[str, tuple[str, int, bytes]] = {}
        self._closed = False

    def address(self, origin: str) -> tuple[str, int, bytes]:
        """(host, port, Host header) of an ``http://host:port`` origin, cached."""
        found = self._addresses.get(origin)
        if found is None:
            parts = urlsplit(origin)
            if parts.scheme != "http" or not parts.hostname:
                raise UpstreamError(f"unsupported engine URL {origin!r} (http://host:port)")
            port = parts.port or 80
            found = (parts.hostname, port, parts.netloc.encode("idna"))
            if len(self._addresses) > 4096:
                self._addresses.clear()
            self._addresses[origin] = found
        return found

    def _park(self, origin: str, connection: _Connection) -> None:
        if self._closed:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(origin, []).append(connection)

    def _reuse(self, origin: str) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest = time.monotonic() - self.idle_seconds
        while idle:
            connection = idle.pop()  # most recently used first: its keep-alive is freshest
            if connection.closed or connection.idle_since < oldest:
                connection.close()
                continue
            return connection
        return None

    async def _connect(self, origin: str) -> _Connection:
        host, port, _ = self.address(origin)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(_Connection, host, port)
        except TimeoutError:
            raise UpstreamError(f"connect to {origin} timed out") from None
        except OSError as exc:
            raise UpstreamError(f"connect to {origin} failed: {exc.strerror or exc}") from None
        return connection

    async def open(self, origin: str, head: bytes, body: bytes = b"") -> Exchange:
        """Send a request (``head`` from ``request_head``) and wait for the answer's head."""
        connection = self._reuse(origin)
        if connection is not None:
            exchange = self._send(origin, connection, head, body)
            try:
                await exchange.wait_head()
                return exchange
            except UpstreamError:
                exchange.close()
                if connection.received_any:
                    raise
                # A kept-alive connection closed under us before answering: try a fresh one.
            except BaseException:
                exchange.close()  # cancelled: drop the connection so the engine aborts
                raise
        connection = await self._connect(origin)
        exchange = self._send(origin, connection, head, body)
        try:
            await exchange.wait_head()
        except BaseException:
            exchange.close()
            raise
        return exchange

    def _send(self, origin: str, connection: _Connection, head: bytes, body: bytes) -> Exchange:
        exchange = Exchange(self, origin, connection)
        connection.exchange = exchange
        connection.received_any = False
        transport = connection.transport
        if transport is None or connection.closed:
            exchange._broken(None)
            return exchange
        transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            transport.write(body)
        return exchange

    async def get(self, origin: str, path: str) -> tuple[int, bytes]:
        """A GET (for ``/metrics`` scrapes): status and whole body."""
        _, _, host = self.address(origin)
        head = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), host)
        exchange = await self.open(origin, head)
        try:
            return exchange.status, await exchange.read()
        except BaseException:
            exchange.close()
            raise

    async def close(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

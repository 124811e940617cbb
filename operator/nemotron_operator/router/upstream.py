"""Forwarding one request to an engine and its answer back to the client.

Non-streaming answers are read whole, then sent. Streaming answers (Server-Sent Events) are
written to the client piece by piece as they arrive, bytes unchanged, never buffered. A
connect error, a broken exchange or a 5xx answer before any byte reached the client is retried
on another endpoint of the same pool (at most ``max_retries`` times); once a streamed byte is
out, never. A client that goes away cancels the handler, which closes the engine connection,
so the engine aborts the request and the GPU stops generating. Past the request deadline the
answer is 504 (or, mid-stream, an SSE error event).

Works with ``pools.Pool`` or a ``pools.Loan`` (reserve/release endpoints), ``upstreamclient`` (the wire),
``httpserver.Responder`` (the client's side), ``metrics.RouterMetrics``; called by ``server``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping

from nemotron_operator.router.errors import RouterError
from nemotron_operator.router.httpserver import Responder
from nemotron_operator.router.metrics import RouterMetrics
from nemotron_operator.router.pools import Loan, Pool
from nemotron_operator.router.upstreamclient import (
    Exchange,
    UpstreamClient,
    UpstreamError,
    request_head,
)

__all__ = ["forward", "forwarded_request_headers", "passed_response_headers"]

# Headers that describe one hop (RFC 9110 7.6.1) or that the router's server writes itself.
_NOT_PASSED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"content-type",
        b"date",
        b"server",
    }
)
_PASSED_REQUEST = (b"x-request-id", b"traceparent", b"tracestate", b"accept")


def forwarded_request_headers(headers: Mapping[bytes, bytes]) -> bytes:
    """What the engine gets, as head lines: JSON content type and tracing ids; never the
    client's API key. ``headers``: the client's, lower-case names."""
    out = b"Content-Type: application/json\r\n"
    for name in _PASSED_REQUEST:
        value = headers.get(name)
        if value is not None and b"\r" not in value and b"\n" not in value:
            out += b"%s: %s\r\n" % (name, value)
    return out


def passed_response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The engine's answer headers a client sees (hop-by-hop and framing ones dropped)."""
    return [(n, v) for n, v in headers if n.lower() not in _NOT_PASSED]


def _content_type(headers: Iterable[tuple[bytes, bytes]], default: bytes) -> bytes:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value
    return default


def _error_event(message: str, code: str) -> bytes:
    error = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
    return b"data: " + json.dumps(error).encode() + b"\n\n"


async def forward(
    out: Responder,
    *,
    client: UpstreamClient,
    request_headers: Mapping[bytes, bytes],
    pool: Pool | Loan,
    path: str,
    body: bytes,
    stream: bool,
    metrics: RouterMetrics,
    max_retries: int,
    deadline_seconds: float,
    started: float,
) -> int:
    """Send ``body`` to an endpoint of ``pool``, relay the answer; returns its status."""
    extra = forwarded_request_headers(request_headers)
    deadline = asyncio.get_running_loop().time() + deadline_seconds
    url = await pool.admit()
    tried: list[str] = []
    try:
        while True:
            tried.append(url)
            exchange: Exchange | None = None
            failure: RouterError | tuple[int, bytes, list[tuple[bytes, bytes]]]
            try:
                async with asyncio.timeout_at(deadline):
                    host = client.address(url)[2]
                    head = request_head(b"POST", path.encode(), host, extra, len(body))
                    exchange = await client.open(url, head, body)
                    streaming = stream and exchange.status == 200
                    data = b"" if streaming else await exchange.read()
            except BaseException as exc:
                # Broken, timed out or cancelled (client gone): drop the connection, so the
                # engine aborts the request.
                if exchange is not None:
                    exchange.close()
                if isinstance(exc, TimeoutError):
                    metrics.upstream_error(pool.name)
                    raise RouterError(
                        504,
                        f"the engine did not answer within {deadline_seconds:g}s",
                        type_="api_error",
                        code="upstream_timeout",
                    ) from None
                if not isinstance(exc, UpstreamError):
                    raise
                failure = RouterError(
                    502,
                    f"engine unreachable: {exc}",
                    type_="api_error",
                    code="upstream_unavailable",
                )
            else:
                if streaming:
                    await _relay_stream(
                        out, exchange, pool=pool, metrics=metrics, started=started,
                        deadline=deadline,
                    )  # fmt: skip
                    return 200
                headers = passed_response_headers(exchange.headers)
                ctype = _content_type(exchange.headers, b"application/json")
                if exchange.status < 500:
                    out.send(exchange.status, data, headers, ctype)
                    return exchange.status
                failure = (exchange.status, data, headers)
            # A failure before any byte reached the client: try another endpoint.
            metrics.upstream_error(pool.name)
            next_url = pool.take_other(tried) if len(tried) <= max_retries else None
            if next_url is None:
                if isinstance(failure, RouterError):
                    raise failure
                status, data, headers = failure
                out.send(status, data, headers, _content_type(headers, b"application/json"))
                return status
            metrics.retry(pool.name)
            pool.release(url)
            url = next_url
    finally:
        pool.release(url)


async def _relay_stream(
    out: Responder,
    exchange: Exchange,
    *,
    pool: Pool | Loan,
    metrics: RouterMetrics,
    started: float,
    deadline: float,
) -> None:
    content_type = _content_type(exchange.headers, b"text/event-stream")
    out.start(200, [*passed_response_headers(exchange.headers), (b"Content-Type", content_type)])
    try:
        first = True
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in exchange.chunks():
                    if first:
                        metrics.ttft(pool.name, time.monotonic() - started)
                        first = False
                    await out.write(chunk)
        except UpstreamError as exc:
            # Too late to retry: say so in the stream, as vLLM does.
            metrics.upstream_error(pool.name)
            await out.write(_error_event(f"engine stream broke: {exc}", "upstream_broken"))
        except TimeoutError:
            metrics.upstream_error(pool.name)
            await out.write(_error_event("request deadline passed mid-stream", "upstream_timeout"))
        out.end()
    finally:
        # Read to the end: the connection is reused. Otherwise (client gone, deadline, error)
        # it is dropped, so the engine aborts the request rather than generating for nobody.
        if exchange.complete:
            exchange.release()
        else:
            exchange.close()

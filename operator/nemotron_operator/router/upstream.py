"""Forwarding one request to an engine and its answer back to the client.

Non-streaming answers are read whole, then sent. Streaming answers (Server-Sent Events) are
written to the client chunk by chunk as they arrive, bytes unchanged, never buffered. A
connect error, a broken exchange or a 5xx answer before any byte reached the client is retried
on another endpoint of the same pool (at most ``max_retries`` times); once a streamed byte is
out, never. A client that goes away cancels the handler, which closes the engine connection,
so the engine aborts the request and the GPU stops generating. Past the request deadline the
answer is 504 (or, mid-stream, an SSE error event).

Works with ``pools.Pool`` (reserve/release endpoints), ``metrics.RouterMetrics``; called by
``server``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from nemotron_operator.router.errors import RouterError
from nemotron_operator.router.metrics import RouterMetrics
from nemotron_operator.router.pools import Pool

__all__ = ["forward", "forwarded_request_headers", "passed_response_headers"]

# Headers that describe one hop (RFC 9110 7.6.1) or that aiohttp sets itself.
_NOT_PASSED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
    }
)
_PASSED_REQUEST = ("x-request-id", "traceparent", "tracestate", "accept")


def forwarded_request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What the engine gets: JSON content type and tracing ids; never the client's API key."""
    out = {"Content-Type": "application/json"}
    for name in _PASSED_REQUEST:
        value = headers.get(name)
        if value is not None:
            out[name] = value
    return out


def passed_response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in _NOT_PASSED:
            out.add(name, value)
    return out


_RETRYABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


def _error_event(message: str, code: str) -> bytes:
    error = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
    return b"data: " + json.dumps(error).encode() + b"\n\n"


async def forward(
    request: web.Request,
    *,
    session: aiohttp.ClientSession,
    pool: Pool,
    path: str,
    body: bytes,
    stream: bool,
    metrics: RouterMetrics,
    max_retries: int,
    deadline_seconds: float,
    started: float,
) -> web.StreamResponse:
    """Send ``body`` to an endpoint of ``pool`` and relay the answer (see module docstring)."""
    headers = forwarded_request_headers(request.headers)
    deadline = asyncio.get_running_loop().time() + deadline_seconds
    url = await pool.admit()
    tried: list[str] = []
    try:
        while True:
            tried.append(url)
            upstream: aiohttp.ClientResponse | None = None
            failure: RouterError | web.Response
            try:
                async with asyncio.timeout_at(deadline):
                    upstream = await session.post(url + path, data=body, headers=headers)
                    streaming = stream and upstream.status == 200
                    data = b"" if streaming else await upstream.read()
            except _RETRYABLE as exc:
                if upstream is not None:
                    upstream.close()
                failure = RouterError(
                    502,
                    f"engine unreachable: {type(exc).__name__}",
                    type_="api_error",
                    code="upstream_unavailable",
                )
            except TimeoutError:
                if upstream is not None:
                    upstream.close()
                metrics.upstream_error(pool.name)
                raise RouterError(
                    504,
                    f"the engine did not answer within {deadline_seconds:g}s",
                    type_="api_error",
                    code="upstream_timeout",
                ) from None
            else:
                if streaming:
                    return await _relay_stream(
                        request,
                        upstream,
                        pool=pool,
                        metrics=metrics,
                        started=started,
                        deadline=deadline,
                    )
                upstream.release()
                answer = web.Response(
                    status=upstream.status,
                    body=data,
                    headers=passed_response_headers(upstream.headers),
                )
                if upstream.status < 500:
                    return answer
                failure = answer
            # A failure before any byte reached the client: try another endpoint.
            metrics.upstream_error(pool.name)
            next_url = pool.take_other(tried) if len(tried) <= max_retries else None
            if next_url is None:
                if isinstance(failure, RouterError):
                    raise failure
                return failure
            metrics.retry(pool.name)
            pool.release(url)
            url = next_url
    finally:
        pool.release(url)


async def _relay_stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    *,
    pool: Pool,
    metrics: RouterMetrics,
    started: float,
    deadline: float,
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=passed_response_headers(upstream.headers))
    try:
        await response.prepare(request)
        first = True
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in upstream.content.iter_any():
                    if first:
                        metrics.ttft(pool.name, time.monotonic() - started)
                        first = False
                    await response.write(chunk)
        except _RETRYABLE as exc:
            # Too late to retry: say so in the stream, as vLLM does.
            metrics.upstream_error(pool.name)
            await response.write(
                _error_event(f"engine stream broke: {type(exc).__name__}", "upstream_broken")
            )
        except TimeoutError:
            metrics.upstream_error(pool.name)
            await response.write(
                _error_event("request deadline passed mid-stream", "upstream_timeout")
            )
        await response.write_eof()
        return response
    finally:
        # Not fully read (client gone, deadline, error): drop the connection so the engine
        # aborts the request rather than generating for nobody.
        if upstream.content.at_eof():
            upstream.release()
        else:
            upstream.close()

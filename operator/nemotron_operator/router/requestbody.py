"""Reading and checking a client's request body: bounded size (413), JSON object (400), the
field each endpoint needs (``messages`` for chat, ``prompt`` for completions; 400), the model
name (404). ``server`` calls ``read_body`` then ``parse_request``; the rest of the pipeline is
``mode`` then ``policy``.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from aiohttp import web

from nemotron_operator.router.errors import RouterError

__all__ = ["Endpoint", "encode_body", "parse_request", "read_body"]

Endpoint = Literal["chat", "completions"]


def _too_large(limit: int) -> RouterError:
    return RouterError(413, f"request body larger than {limit} bytes", code="request_too_large")


async def read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_request(raw: bytes, endpoint: Endpoint, served_model: str) -> dict[str, Any]:
    """The body as a dict, checked; the model name filled in when the client left it out."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RouterError(400, f"invalid JSON body: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RouterError(400, "the body must be a JSON object", code="invalid_json")
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RouterError(
                400, "'messages' must be a non-empty list", code="missing_field", param="messages"
            )
    else:
        prompt = body.get("prompt")
        if prompt is None or (isinstance(prompt, str | list) and len(prompt) == 0):
            raise RouterError(400, "'prompt' is required", code="missing_field", param="prompt")
    model = body.get("model")
    if model is None:
        body["model"] = served_model
    elif model != served_model:
        raise RouterError(
            404,
            f"The model `{model}` does not exist. This deployment serves `{served_model}`.",
            code="model_not_found",
            param="model",
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RouterError(400, "'stream' must be a boolean", code="invalid_value", param="stream")
    return body


def encode_body(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)

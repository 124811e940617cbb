"""Reading and checking a client's request body: bounded size (413), JSON object (400), the
field each endpoint needs (``messages`` for chat, ``prompt`` for completions; 400), the model
name (404). ``httpserver`` bounds the body's size and flags a larger one; ``server`` calls
``check_size`` then ``parse_request``; the rest of the pipeline is ``mode`` then ``policy``.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from nemotron_operator.router.errors import RouterError

__all__ = ["Endpoint", "check_size", "encode_body", "parse_request"]

Endpoint = Literal["chat", "completions"]


def check_size(too_large: bool, limit: int) -> None:
    """413 for a body the server flagged as over ``limit`` bytes."""
    if too_large:
        raise RouterError(413, f"request body larger than {limit} bytes", code="request_too_large")


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

"""OpenAI-shaped errors: the one exception the router raises for a client-visible failure and
the JSON body it turns into (``{"error": {"message", "type", "param", "code"}}``).

Raised by ``requestbody`` (400/413), ``auth`` (401), ``server`` (404), ``admission`` (429,
503) and ``upstream`` (502, 504); rendered once by ``server``'s error middleware.
"""

from __future__ import annotations

import json

__all__ = ["RouterError", "error_body"]


def error_body(*, message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    """The JSON bytes of an OpenAI error object."""
    return json.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    ).encode()


class RouterError(Exception):
    """A failure answered to the client with ``status`` and an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type_ = type_
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> bytes:
        return error_body(message=self.message, type_=self.type_, code=self.code, param=self.param)

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.retry_after is not None:
            # Retry-After is whole seconds; never 0, which some clients read as "hammer now".
            headers["Retry-After"] = str(max(1, int(self.retry_after + 0.999)))
        return headers

"""Optional API keys: every file of the mounted Secret directory is one accepted key. Bearer
tokens are compared in constant time against every key (no early exit), so timing reveals
neither a key nor which key matched. ``server`` calls ``KeyRing.check`` per request;
``configfile`` reloads the ring with the config.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from nemotron_operator.router.errors import RouterError

__all__ = ["KeyRing", "load_keys"]


def load_keys(directory: str | Path) -> tuple[bytes, ...]:
    """The keys in a Secret mount (skipping the ``..data`` bookkeeping entries)."""
    folder = Path(directory)
    keys = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        key = entry.read_text(encoding="utf-8").strip()
        if key:
            keys.append(key.encode())
    return tuple(keys)


class KeyRing:
    def __init__(self, keys: tuple[bytes, ...] | None) -> None:
        # None: no auth configured; an empty tuple: auth configured but no key yet (deny all).
        self.keys = keys

    def check(self, authorization: str | None) -> None:
        if self.keys is None:
            return
        presented = b""
        if authorization and authorization[:7].lower() == "bearer ":
            presented = authorization[7:].strip().encode()
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(presented, key)
        if not (presented and matched):
            raise RouterError(
                401,
                "invalid or missing API key (Authorization: Bearer <key>)",
                type_="authentication_error",
                code="invalid_api_key",
            )

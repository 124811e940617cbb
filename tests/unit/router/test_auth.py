"""API keys from a Secret mount (router.auth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron_operator.router.auth import KeyRing, load_keys
from nemotron_operator.router.errors import RouterError


def test_keys_from_a_secret_mount(tmp_path: Path) -> None:
    (tmp_path / "alice").write_text("sk-alice\n")
    (tmp_path / "bob").write_text("sk-bob")
    (tmp_path / "..data").mkdir()
    (tmp_path / ".hidden").write_text("nope")
    (tmp_path / "empty").write_text("  ")
    assert load_keys(tmp_path) == (b"sk-alice", b"sk-bob")


def test_check() -> None:
    ring = KeyRing((b"sk-alice", b"sk-bob"))
    ring.check("Bearer sk-bob")
    ring.check("bearer sk-alice")
    for bad in (None, "", "Bearer", "Bearer ", "Bearer sk-carol", "sk-bob", "Basic sk-bob"):
        with pytest.raises(RouterError) as info:
            ring.check(bad)
        assert info.value.status == 401
    KeyRing(None).check(None)
    with pytest.raises(RouterError):
        KeyRing(()).check("Bearer anything")

"""The cluster tier: every test here is marked ``cluster``; fixtures come from
``tests.support.kube`` (loaded by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kube import Kube

__all__ = ["Kube"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)

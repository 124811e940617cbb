"""The e2e tier: every test here is marked ``e2e``; fixtures come from ``tests.support.kube``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kube import Kube


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _cluster_is_up(kube: Kube) -> Kube:
    """Every test of this tier runs against the local cluster, started on first use: a test
    never skips for want of a cluster that the test command itself is responsible for."""
    return kube

"""A slow background loop that refreshes the status of every NemotronDeployment that is not
Ready: engine pods the scheduler cannot place, a Secret created after the CR, an image that
cannot be pulled -- changes that come with no event of an object the operator watches.

It runs beside kopf in the operator process (``controller.cli``), not as a kopf timer, because
kopf puts a finalizer on every object with a timer, and a CR then cannot be deleted while the
operator is down. One LIST per namespace per period when everything is Ready.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nemotron_operator.api.models import API_VERSION, KIND
from nemotron_operator.controller.handlers import Runtime
from nemotron_operator.controller.metrics import STATUS_WRITES
from nemotron_operator.controller.reconcile import refresh_status

__all__ = ["needs_refresh", "refresh_not_ready_forever"]

log = logging.getLogger(__name__)


def needs_refresh(body: dict[str, Any]) -> bool:
    """Not Ready (or no status yet), and not being deleted."""
    if (body.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") != "True")
    return True


async def _list(runtime: Runtime) -> list[dict[str, Any]]:
    client = runtime.client
    if runtime.settings.namespaces:
        items: list[dict[str, Any]] = []
        for namespace in runtime.settings.namespaces:
            items += await client.list_objects(API_VERSION, KIND, namespace)
        return items
    return await client.list_all(API_VERSION, KIND)


async def refresh_not_ready_forever(runtime: Runtime, *, period: float = 20.0) -> None:
    """Until cancelled: every ``period`` seconds, refresh the status of CRs not Ready."""
    while True:
        await asyncio.sleep(period)
        try:
            bodies = await _list(runtime)
        except Exception as exc:  # the next round tries again
            log.warning("status refresher: listing failed: %s", exc)
            continue
        for body in filter(needs_refresh, bodies):
            meta = body["metadata"]
            namespace, name = str(meta["namespace"]), str(meta["name"])

            async def work(namespace: str = namespace, name: str = name) -> None:
                outcome = await refresh_status(
                    runtime.client, namespace, name, settings=runtime.settings
                )
                if outcome.status_written:
                    STATUS_WRITES.inc()

            try:
                await runtime.coalesced((namespace, name), work)
            except Exception as exc:
                log.warning("status refresher: %s/%s: %s", namespace, name, exc)

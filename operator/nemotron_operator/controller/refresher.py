"""A slow background loop that refreshes the status of every NemotronDeployment that is not
Ready: engine pods the scheduler cannot place, a Secret created after the CR, an image that
cannot be pulled -- changes that come with no event of an object the operator watches.

It runs beside kopf in the operator process (``controller.cli``), not as a kopf timer, because
kopf puts a finalizer on every object with a timer, and a CR then cannot be deleted while the
operator is down. One LIST per namespace per period when everything is Ready.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from nemotron_operator.api.models import API_VERSION, KIND
from nemotron_operator.controller.handlers import Runtime
from nemotron_operator.controller.metrics import STATUS_WRITES
from nemotron_operator.controller.reconcile import refresh_status

__all__ = ["Backoff", "needs_refresh", "refresh_not_ready_forever"]

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


@dataclass
class Backoff:
    """When each not-Ready CR is due for its next refresh. A CR whose status did not change at
    its last refresh waits twice as long next time (up to ``ceiling``), so CRs that stay stuck
    (no nodes for their pods, say) cost ever less; any change of its status resets the wait."""

    base: float = 20.0
    ceiling: float = 320.0
    _due: dict[tuple[str, str], tuple[float, float, str]] = field(default_factory=dict)

    def due(self, key: tuple[str, str], status_digest: str, now: float) -> bool:
        entry = self._due.get(key)
        return entry is None or entry[2] != status_digest or now >= entry[0]

    def done(self, key: tuple[str, str], before: str, after: str, now: float) -> None:
        entry = self._due.get(key)
        wait = self.base
        if entry is not None and entry[2] == before == after:
            wait = min(entry[1] * 2, self.ceiling)
        self._due[key] = (now + wait, wait, after)

    def forget_except(self, keys: set[tuple[str, str]]) -> None:
        for key in set(self._due) - keys:
            del self._due[key]


def _digest(body: dict[str, Any] | None) -> str:
    return json.dumps((body or {}).get("status"), sort_keys=True)


async def refresh_not_ready_forever(runtime: Runtime, *, period: float = 20.0) -> None:
    """Until cancelled: every ``period`` seconds, refresh the status of the CRs not Ready
    that are due (``Backoff``)."""
    backoff = Backoff(base=period)
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period)
        try:
            bodies = await _list(runtime)
        except Exception as exc:  # the next round tries again
            log.warning("status refresher: listing failed: %s", exc)
            continue
        waiting = [b for b in bodies if needs_refresh(b)]
        keys = {(str(b["metadata"]["namespace"]), str(b["metadata"]["name"])) for b in waiting}
        backoff.forget_except(keys)
        for body in waiting:
            meta = body["metadata"]
            key = (str(meta["namespace"]), str(meta["name"]))
            before = _digest(body)
            if not backoff.due(key, before, loop.time()):
                continue

            async def work(key: tuple[str, str] = key, before: str = before) -> None:
                outcome = await refresh_status(
                    runtime.client, key[0], key[1], settings=runtime.settings
                )
                if outcome.status_written:
                    STATUS_WRITES.inc()
                # After a write the next listing shows a new digest: due again at once.
                after = before if not outcome.status_written else "written"
                backoff.done(key, before, after, loop.time())

            try:
                await runtime.coalesced(key, work)
            except Exception as exc:
                log.warning("status refresher: %s/%s: %s", key[0], key[1], exc)

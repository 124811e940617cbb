"""Leader election on a ``coordination.k8s.io`` Lease, so that of several operator replicas
only one reconciles. ``lease_decision`` is the pure rule; ``LeaderElector`` is the loop that
applies it through ``kube.client`` (optimistic concurrency: a PUT with the resourceVersion it
read, so two candidates can never both win). ``controller.cli`` starts kopf only once the
Lease is held and stops it when the Lease is lost.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from nemotron_operator.controller.metrics import IS_LEADER
from nemotron_operator.kube.client import Conflict, KubeClient, KubeError

__all__ = ["LeaderElector", "lease_decision"]

log = logging.getLogger(__name__)

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    for fmt in (_TIME_FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def lease_decision(
    spec: dict[str, Any] | None, *, identity: str, now: datetime
) -> Literal["renew", "acquire", "wait"]:
    """What a candidate does with a Lease's current spec (None: the Lease does not exist)."""
    if spec is None:
        return "acquire"
    holder = spec.get("holderIdentity")
    if holder == identity:
        return "renew"
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or 15)
    if not holder or renewed is None or now >= renewed + timedelta(seconds=duration):
        return "acquire"
    return "wait"


class LeaderElector:
    """Acquires and renews the Lease; ``is_leader`` is set while held, ``lost`` once lost."""

    def __init__(
        self, client: KubeClient, *, name: str, namespace: str, identity: str, duration: int
    ) -> None:
        self._client = client
        self._name = name
        self._namespace = namespace
        self._identity = identity
        self._duration = duration
        self.is_leader = asyncio.Event()
        self.lost = asyncio.Event()

    def _lease(self, current: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
        stamp = now.strftime(_TIME_FORMAT)
        spec = dict((current or {}).get("spec") or {})
        transitions = int(spec.get("leaseTransitions") or 0)
        if spec.get("holderIdentity") != self._identity:
            spec["acquireTime"] = stamp
            transitions += 1 if current is not None else 0
        spec.update(
            holderIdentity=self._identity,
            leaseDurationSeconds=self._duration,
            renewTime=stamp,
            leaseTransitions=transitions,
        )
        metadata: dict[str, Any] = {"name": self._name, "namespace": self._namespace}
        if current is not None:
            metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    async def try_once(self) -> bool:
        """One attempt to acquire or renew; True when this candidate holds the Lease."""
        now = datetime.now(UTC)
        current = await self._client.get(
            "coordination.k8s.io/v1", "Lease", self._namespace, self._name
        )
        decision = lease_decision(
            None if current is None else current.get("spec") or {},
            identity=self._identity,
            now=now,
        )
        if decision == "wait":
            return False
        try:
            if current is None:
                await self._client.create(self._lease(None, now))
            else:
                await self._client.replace(self._lease(current, now))
        except Conflict:
            return False
        return True

    async def run(self) -> None:
        """Loop until cancelled or the Lease is lost after being held."""
        period = max(self._duration / 3, 1.0)
        last_held: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                held = await self.try_once()
            except (KubeError, OSError) as exc:
                log.warning("leader election: %s", exc)
                held = False
            except Exception as exc:  # httpx transport errors and the like: keep trying
                log.warning("leader election: %s", exc)
                held = False
            if held:
                last_held = loop.time()
                if not self.is_leader.is_set():
                    log.info("leader election: %s now holds lease %s", self._identity, self._name)
                self.is_leader.set()
                IS_LEADER.set(1)
            elif last_held is not None and loop.time() - last_held > self._duration:
                log.error("leader election: lease %s lost", self._name)
                IS_LEADER.set(0)
                self.lost.set()
                return
            await asyncio.sleep(period)

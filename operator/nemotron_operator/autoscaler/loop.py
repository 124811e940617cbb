"""One autoscaling step for one NemotronDeployment: gather metrics, decide, write ``/scale``.

The controller calls ``autoscale_once`` from a kopf timer per CR (every
``min(intervalSeconds)`` of its autoscaled pools). Kubernetes I/O stays out of this package:
the step depends on four small Protocols, which the controller implements --
- ``TargetSource``: the metric URLs of the router pods and the pool's ready engine pods,
- ``MetricsFetcher``: scrapes them (``metrics_scrape.HttpMetricsFetcher`` is the real one),
- ``ScaleClient``: reads and writes the pool Deployment's replicas through ``/scale``,
- ``StateStore``: loads and saves the policy's state (``state.PolicyState.to_dict``), e.g. in
  the annotation ``STATE_ANNOTATION`` of the pool Deployment or in the CR's status.
It returns one ``PoolOutcome`` per pool for the status and for an Event per scale. The policy
(``policy.decide``) is the same function the simulator drives. Only this loop writes
replicas of an autoscaled pool: the reconciler must leave ``spec.replicas`` out of its apply
for such pools (that is how the two never fight).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from nemotron_operator.autoscaler.metrics_scrape import PoolTargets
from nemotron_operator.autoscaler.policy import PoolSignals, decide
from nemotron_operator.autoscaler.settings import PolicySettings
from nemotron_operator.autoscaler.state import PolicyState

__all__ = [
    "STATE_ANNOTATION",
    "MetricsFetcher",
    "PoolOutcome",
    "ScaleClient",
    "StateStore",
    "TargetSource",
    "autoscale_once",
    "pool_deployment_name",
]

log = logging.getLogger(__name__)

# Where the controller may keep a pool's policy state (JSON of ``PolicyState.to_dict``).
STATE_ANNOTATION = "serving.nemotron.dev/autoscaler-state"


class TargetSource(Protocol):
    async def __call__(self, *, namespace: str, name: str, pool: str) -> PoolTargets: ...


class MetricsFetcher(Protocol):
    async def __call__(self, *, targets: PoolTargets, pool: str) -> PoolSignals: ...


class ScaleClient(Protocol):
    async def get_replicas(self, *, namespace: str, deployment: str) -> int: ...

    async def set_replicas(self, *, namespace: str, deployment: str, replicas: int) -> None: ...


class StateStore(Protocol):
    async def load(self, *, namespace: str, name: str, pool: str) -> Mapping[str, Any] | None: ...

    async def save(
        self, *, namespace: str, name: str, pool: str, state: Mapping[str, Any]
    ) -> None: ...


@dataclass(frozen=True)
class PoolOutcome:
    """What happened to one pool in one step: for the status and an Event per scale."""

    pool: str
    deployment: str
    current: int
    desired: int
    reason: str
    time: float
    scaled: bool
    error: str | None = None

    def to_status(self) -> dict[str, Any]:
        """The pool's autoscaling status (camelCase, RFC 3339 time)."""
        out: dict[str, Any] = {
            "desiredReplicas": self.desired,
            "currentReplicas": self.current,
            "lastDecision": self.reason,
            "lastDecisionTime": datetime.fromtimestamp(self.time, UTC).isoformat(
                timespec="seconds"
            ),
        }
        if self.error:
            out["error"] = self.error
        return out

    def event_message(self) -> str:
        return f"scaled {self.deployment} from {self.current} to {self.desired}: {self.reason}"


def pool_deployment_name(name: str, pool: str) -> str:
    """``<name>-on`` / ``<name>-off`` (docs/contracts.md)."""
    return f"{name}-{pool}"


async def _signals(
    *, targets: TargetSource, fetch: MetricsFetcher, namespace: str, name: str, pool: str
) -> PoolSignals:
    try:
        found = await targets(namespace=namespace, name=name, pool=pool)
        return await fetch(targets=found, pool=pool)
    except Exception:  # any failure to observe is "no data": the policy holds
        log.warning(
            "autoscaler: no metrics for %s/%s pool %s", namespace, name, pool, exc_info=True
        )
        return PoolSignals(complete=False)


async def autoscale_once(
    *,
    namespace: str,
    name: str,
    pools: Mapping[str, PolicySettings],
    targets: TargetSource,
    fetch: MetricsFetcher,
    scaler: ScaleClient,
    store: StateStore,
    now: float,
) -> list[PoolOutcome]:
    """Run the policy once for each autoscaled pool of one CR; scale where it says so.

    ``pools`` maps ``on``/``off`` to its settings (``settings.builtin_autoscaled_pools``).
    A pool decided less than its own ``interval_s`` ago is skipped (no outcome). A failed
    ``/scale`` write is reported in the outcome (and raised nowhere): the next step decides
    again from what it then reads.
    """
    outcomes: list[PoolOutcome] = []
    for pool, settings in sorted(pools.items()):
        deployment = pool_deployment_name(name, pool)
        try:
            stored = await store.load(namespace=namespace, name=name, pool=pool)
        except Exception:  # a fresh state is the safe default: it never scales down
            log.warning("autoscaler: cannot load state of %s", deployment, exc_info=True)
            stored = None
        state = PolicyState.from_dict(stored)
        due = settings.interval_s - min(0.5, 0.1 * settings.interval_s)  # timer jitter
        if state.last_time is not None and 0 <= now - state.last_time < due:
            # The timer runs at the shortest interval of the CR's pools; a pool with a longer
            # one waits its turn (its consecutive-decision count means "per its interval").
            continue
        try:
            current = await scaler.get_replicas(namespace=namespace, deployment=deployment)
        except Exception as exc:  # this pool holds; the other pools still get their step
            last = state.last_desired or 0
            outcomes.append(
                PoolOutcome(
                    pool=pool,
                    deployment=deployment,
                    current=last,
                    desired=last,
                    reason="hold: cannot read replicas",
                    time=now,
                    scaled=False,
                    error=f"cannot read replicas: {exc}",
                )
            )
            continue
        signals = await _signals(
            targets=targets, fetch=fetch, namespace=namespace, name=name, pool=pool
        )
        decision = decide(signals=signals, current=current, settings=settings, state=state, now=now)
        error: str | None = None
        scaled = False
        if decision.changed:
            try:
                await scaler.set_replicas(
                    namespace=namespace, deployment=deployment, replicas=decision.desired
                )
                scaled = True
            except Exception as exc:  # reported in the status; the next step retries
                error = f"scale failed: {exc}"
                log.warning("autoscaler: %s %s", deployment, error)
        new_state = decision.state if error is None else state
        try:
            await store.save(namespace=namespace, name=name, pool=pool, state=new_state.to_dict())
        except Exception:  # the next step starts from the older state: conservative
            log.warning("autoscaler: cannot save state of %s", deployment, exc_info=True)
        outcomes.append(
            PoolOutcome(
                pool=pool,
                deployment=deployment,
                current=current,
                desired=decision.desired,
                reason=decision.reason,
                time=now,
                scaled=scaled,
                error=error,
            )
        )
    return outcomes

"""The kopf handlers, thin on purpose: each one calls ``controller.reconcile`` (apply the
desired state, write status) or ``controller.autoscaling`` (one autoscaling step) and turns
the outcome into Events and metrics. They live in a registry built per process by
``build_registry`` (not kopf's global one), so tests and ``controller.cli`` choose what runs.

Triggers:
- CR created, spec changed, operator (re)started: full reconcile (server-side apply; a no-op
  when nothing changed, so a restart changes nothing).
- A child Deployment changed: status refresh of its CR (coalesced per CR); deleted while the
  CR lives: full reconcile, which recreates it.
- CR not Ready: ``controller.refresher`` (beside kopf, not a kopf timer) refreshes status.
- CR with builtin autoscaling: a daemon runs ``autoscaler.loop.autoscale_once`` every
  ``intervalSeconds`` (the smallest of its autoscaled pools).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import kopf
from pydantic import ValidationError

from nemotron_operator.api.models import GROUP, PLURAL, VERSION, NemotronDeploymentSpec
from nemotron_operator.controller.autoscaling import autoscaled_interval, status_patch, step
from nemotron_operator.controller.metrics import (
    AUTOSCALER_STEPS,
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILES,
    STATUS_WRITES,
)
from nemotron_operator.controller.naming import DEPLOYMENT_LABEL, MANAGED_BY
from nemotron_operator.controller.reconcile import Outcome, RetryLater, reconcile, refresh_status
from nemotron_operator.controller.settings import OperatorSettings
from nemotron_operator.controller.status import DeploymentObservation, observe_deployment
from nemotron_operator.kube.client import KubeClient

__all__ = ["Runtime", "build_registry"]

log = logging.getLogger(__name__)

_RETRY_DELAY_SECONDS = 10
_KOPF_PREFIX = "kopf.serving.nemotron.dev"


@dataclass
class Runtime:
    """What the handlers share in one operator process."""

    client: KubeClient
    http: httpx.AsyncClient
    settings: OperatorSettings
    engine_files: dict[str, str]
    # Bursts of events for one CR (its three Deployments change together) fold into one refresh.
    debounce_seconds: float = 0.5
    _refreshing: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    # The last status-relevant view of each child Deployment: other changes skip the refresh.
    _seen: dict[tuple[str, str], DeploymentObservation] = field(default_factory=dict)

    def observation_changed(self, key: tuple[str, str], obs: DeploymentObservation | None) -> bool:
        """Record ``obs`` for Deployment ``key``; whether it differs from the last one seen."""
        if obs is None:
            return self._seen.pop(key, None) is not None
        changed = self._seen.get(key) != obs
        self._seen[key] = obs
        return changed

    async def coalesced(self, key: tuple[str, str], work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` for ``key``; calls arriving while it runs fold into one more run."""
        pending = self._refreshing.get(key)
        if pending is not None:
            pending.set()
            return
        again = asyncio.Event()
        self._refreshing[key] = again
        try:
            while True:
                again.clear()
                if self.debounce_seconds:
                    await asyncio.sleep(self.debounce_seconds)
                await work()
                if not again.is_set():
                    break
        finally:
            del self._refreshing[key]


def _post_events(raw: kopf.Body | dict[str, Any], outcome: Outcome) -> None:
    # kopf posts Events for plain dicts too; its annotations only name its Body view.
    body = cast(kopf.Body, raw)
    for action in outcome.actions:
        if action.warning:
            kopf.warn(body, reason=action.reason, message=action.message)
        else:
            kopf.event(body, type="Normal", reason=action.reason, message=action.message)
    if outcome.status_written:
        STATUS_WRITES.inc()


def _autoscaled(spec: dict[str, Any] | kopf.Spec) -> bool:
    pools = dict(spec).get("pools") or {}
    return any(
        ((pools.get(key) or {}).get("autoscaling") or {}).get("enabled")
        and ((pools.get(key) or {}).get("autoscaling") or {}).get("engine", "builtin") == "builtin"
        for key in ("reasoningOn", "reasoningOff")
    )


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    """A kopf registry with every handler of the operator bound to ``runtime``."""
    registry = kopf.OperatorRegistry()
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A private registry has none of kopf's default login handlers. kopf's own readers
        # (in-cluster, else $KUBECONFIG read now): the kubernetes client's loader fixes its
        # default path when imported, before ``controller.cli`` sets $KUBECONFIG from a flag.
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT"),
        )
        if info is not None and host and port:
            # kopf names the apiserver https://kubernetes.default.svc, which needs cluster DNS;
            # the official clients use the address the kubelet injects, and so do we.
            server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
            info = dataclasses.replace(info, server=server)
        info = info or kopf.login_with_kubeconfig(**kwargs)
        return info

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Keep kopf's bookkeeping in annotations: the status schema is ours alone.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=_KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=_KOPF_PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{GROUP}/operator"
        # Leader election is ours (a Lease, controller.leader): no kopf peering CRDs needed.
        settings.peering.standalone = True
        # Our own Events are posted explicitly; of kopf's log lines only warnings and errors
        # become Events (not one "handler succeeded" per reconcile).
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60

    async def _reconcile(body: kopf.Body, logger: kopf.Logger, *, announce: bool = False) -> None:
        started = time.perf_counter()
        try:
            outcome = await reconcile(
                runtime.client,
                dict(body),
                settings=runtime.settings,
                engine_files=runtime.engine_files,
            )
        except RetryLater as exc:
            RECONCILES.labels(result="retry").inc()
            RECONCILE_ERRORS.labels(reason="retry").inc()
            raise kopf.TemporaryError(str(exc), delay=_RETRY_DELAY_SECONDS) from exc
        except Exception:
            RECONCILES.labels(result="error").inc()
            RECONCILE_ERRORS.labels(reason="unexpected").inc()
            raise
        finally:
            RECONCILE_DURATION.observe(time.perf_counter() - started)
        result = "degraded" if outcome.problems else "ok"
        RECONCILES.labels(result=result).inc()
        reported = {action.reason for action in outcome.actions}
        for problem in outcome.problems:
            RECONCILE_ERRORS.labels(reason=problem.reason).inc()
            if problem.reason not in reported:
                # Found while reconciling (missing Secret, unschedulable pods): say so once
                # per reconcile, not on every status refresh.
                kopf.warn(body, reason=problem.reason, message=problem.message)
        _post_events(body, outcome)
        if announce and not outcome.problems:
            generation = body.meta.get("generation")
            kopf.event(
                body,
                type="Normal",
                reason="Reconciled",
                message=f"applied generation {generation}: {outcome.applied} objects",
            )
        logger.debug(
            "reconciled: %d actions, %d problems", len(outcome.actions), len(outcome.problems)
        )

    @kopf.on.resume(*resource, registry=registry)
    async def resume_cr(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        await _reconcile(body, logger)

    @kopf.on.create(*resource, registry=registry)
    async def create_cr(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        await _reconcile(body, logger, announce=True)

    @kopf.on.update(*resource, registry=registry)
    async def update_cr(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        await _reconcile(body, logger, announce=True)

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        labels={"app.kubernetes.io/managed-by": MANAGED_BY, DEPLOYMENT_LABEL: kopf.PRESENT},
        registry=registry,
    )
    async def child_deployment(
        event: kopf.RawEvent,
        body: kopf.Body,
        namespace: str | None,
        labels: kopf.Labels,
        **_: Any,
    ) -> None:
        if namespace is None:
            return
        owner = str(labels[DEPLOYMENT_LABEL])
        deployment = (namespace, str(body.get("metadata", {}).get("name", "")))
        if event.get("type") is None:
            # The initial listing: the resume handlers reconcile every CR anyway.
            runtime.observation_changed(deployment, observe_deployment(dict(body)))
            return
        if event.get("type") == "DELETED":
            runtime.observation_changed(deployment, None)
            cr = await runtime.client.get(
                f"{GROUP}/{VERSION}", "NemotronDeployment", namespace, owner
            )
            if cr is not None and not cr["metadata"].get("deletionTimestamp"):
                try:
                    outcome = await reconcile(
                        runtime.client,
                        cr,
                        settings=runtime.settings,
                        engine_files=runtime.engine_files,
                    )
                except RetryLater as exc:
                    log.warning("re-creating children of %s/%s: %s", namespace, owner, exc)
                    return
                _post_events(cr, outcome)
            return

        if not runtime.observation_changed(deployment, observe_deployment(dict(body))):
            return  # nothing the status shows has changed

        async def work() -> None:
            outcome = await refresh_status(
                runtime.client, namespace, owner, settings=runtime.settings
            )
            if outcome.status_written:
                STATUS_WRITES.inc()

        try:
            await runtime.coalesced((namespace, owner), work)
        except Exception as exc:  # a status refresh is retried by the next event or timer
            log.warning("status refresh of %s/%s failed: %s", namespace, owner, exc)

    @kopf.daemon(
        *resource,
        when=lambda spec, **_: _autoscaled(spec),
        cancellation_timeout=5,
        registry=registry,
    )
    async def autoscaling(
        stopped: kopf.DaemonStopped, body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> None:
        """The per-CR autoscaling loop (``autoscaler.loop.autoscale_once`` every interval)."""
        if namespace is None:
            return
        while not stopped:
            interval = 5.0
            # The daemon holds no finalizer (see _without_finalizers), so kopf may not stop it
            # when the CR goes: it stops itself.
            if (
                await runtime.client.get(
                    f"{GROUP}/{VERSION}", "NemotronDeployment", namespace, name
                )
                is None
            ):
                return
            try:
                spec = NemotronDeploymentSpec.model_validate(dict(body.spec))
                interval = autoscaled_interval(spec) or interval
                outcomes = await step(
                    runtime.client, runtime.http, namespace=namespace, name=name, spec=spec
                )
            except ValidationError:
                AUTOSCALER_STEPS.labels(result="invalid").inc()
            except Exception as exc:  # the next step tries again; never kill the daemon
                AUTOSCALER_STEPS.labels(result="error").inc()
                log.warning("autoscaling %s/%s: %s", namespace, name, exc)
            else:
                AUTOSCALER_STEPS.labels(result="ok").inc()
                patch = status_patch(body.get("status"), outcomes)
                if patch:
                    try:
                        await runtime.client.patch_merge(
                            f"{GROUP}/{VERSION}",
                            "NemotronDeployment",
                            namespace,
                            name,
                            body={"status": patch},
                            subresource="status",
                        )
                    except Exception as exc:  # the next changed decision writes it again
                        log.warning("autoscaling status of %s/%s: %s", namespace, name, exc)
                for outcome in outcomes:
                    if outcome.scaled:
                        kopf.event(
                            body,
                            type="Normal",
                            reason="Autoscaled",
                            message=outcome.event_message(),
                        )
                    elif outcome.error and "not found" not in outcome.error:
                        # A pool Deployment not made yet (the CR is new) is not a failure:
                        # the reconciler is creating it and the next step scales it.
                        kopf.warn(body, reason="AutoscaleFailed", message=outcome.error)
            await stopped.wait(interval)

    _without_finalizers(registry)
    return registry


def _without_finalizers(registry: kopf.OperatorRegistry) -> None:
    """Drop the finalizer kopf puts on every object with a daemon.

    With it, a NemotronDeployment deleted while no operator runs (uninstalled, scaled to zero,
    a test that stopped it) would never go away, and its namespace would hang in Terminating.
    Nothing of ours needs it: children go by ownerReferences, and the autoscaling daemon ends
    itself once its CR is gone.
    """
    spawning = registry._spawning
    spawning._handlers = [
        dataclasses.replace(h, requires_finalizer=False) for h in spawning.get_all_handlers()
    ]

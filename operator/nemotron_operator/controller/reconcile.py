"""One reconcile of a NemotronDeployment, and the status refresh: the I/O that executes the
plan computed by ``controller.desired`` through the ``kube.client`` adapter, and writes the
status computed by ``controller.status``. Called by the thin kopf handlers
(``controller.handlers``); knows nothing of kopf, so it reports what it did as ``Action``s
for the handlers to post as Events, and raises ``RetryLater`` for failures worth retrying.

Order: engine ConfigMap and PVC first, then per pool Service, PDB and Deployment, then the
router's config, RBAC, Service and Deployment. Every object goes through server-side apply
under one field manager, except that a pool Deployment is created with POST (so it starts at
its initial replica count) and its replicas are then only changed through ``/scale`` when
they fall outside min..max (``controller.replicas``); the applied configuration never holds
``spec.replicas``, so an apply never resets what a scaler set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from nemotron_operator.api.models import API_VERSION, KIND
from nemotron_operator.controller.context import CrContext
from nemotron_operator.controller.desired import (
    MODES,
    DesiredState,
    context_from_body,
    desired_state,
)
from nemotron_operator.controller.naming import DEPLOYMENT_LABEL, Mode, pool_object_name
from nemotron_operator.controller.replicas import initial_replicas, replicas_to_set
from nemotron_operator.controller.router_objects import endpoint_url
from nemotron_operator.controller.settings import OperatorSettings
from nemotron_operator.controller.status import (
    DeploymentObservation,
    Problem,
    compute_status,
    observe_deployment,
    status_differs,
)
from nemotron_operator.kube.client import Conflict, KubeClient, KubeError

__all__ = ["Action", "Outcome", "RetryLater", "reconcile", "refresh_status"]


class RetryLater(Exception):
    """A failure that may pass by itself (apiserver unavailable, throttled, conflict)."""


@dataclass(frozen=True)
class Action:
    """Something to report as an Event on the CR."""

    warning: bool
    reason: str
    message: str


@dataclass
class Outcome:
    actions: list[Action] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    status_written: bool = False
    applied: int = 0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(obj: dict[str, Any]) -> str:
    return f"{obj['kind']} {obj['metadata']['name']}"


def _retryable(exc: KubeError) -> bool:
    return exc.status >= 500 or exc.status in (409, 429)


async def _apply_pool_deployment(
    client: KubeClient, ctx: CrContext, mode: Mode, obj: dict[str, Any], outcome: Outcome
) -> dict[str, Any]:
    pool = ctx.spec.pool(mode)
    meta = obj["metadata"]
    current = await client.get("apps/v1", "Deployment", meta["namespace"], meta["name"])
    if current is None:
        first = {**obj, "spec": {**obj["spec"], "replicas": initial_replicas(pool)}}
        try:
            created = await client.create(first)
        except Conflict:
            pass  # made meanwhile (another reconcile, or a restart): apply below
        else:
            outcome.actions.append(
                Action(
                    False,
                    "Created",
                    f"created {_describe(obj)} with {created['spec']['replicas']} replicas",
                )
            )
            # Apply right away too: the applied configuration then owns every field but
            # replicas from the start, and the next reconcile (or a restart) is a no-op.
            return await client.apply(obj)
    applied = await client.apply(obj)
    replicas = (applied.get("spec") or {}).get("replicas")
    target = replicas_to_set(pool, int(replicas) if replicas is not None else None)
    if target is not None:
        applied = await client.patch_merge(
            "apps/v1",
            "Deployment",
            meta["namespace"],
            meta["name"],
            body={"spec": {"replicas": target}},
        )
        outcome.actions.append(
            Action(
                False,
                "Scaled",
                f"scaled {_describe(obj)} from {replicas} to {target} (replicas {pool.replicas.min}..{pool.replicas.max})",
            )
        )
    return applied


async def _apply_all(
    client: KubeClient, ctx: CrContext, state: DesiredState, outcome: Outcome
) -> dict[str, dict[str, Any]]:
    """Apply every object; return the applied Deployments by name. Stops at the first
    refused object (so a bad value never leaves later objects half-updated)."""
    pool_by_name = {name: mode for mode, name in state.pool_deployments.items()}
    deployments: dict[str, dict[str, Any]] = {}
    for obj in state.objects:
        try:
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] in pool_by_name:
                mode = pool_by_name[obj["metadata"]["name"]]
                deployments[obj["metadata"]["name"]] = await _apply_pool_deployment(
                    client, ctx, mode, obj, outcome
                )
            else:
                applied = await client.apply(obj)
                if obj["kind"] == "Deployment":
                    deployments[obj["metadata"]["name"]] = applied
            outcome.applied += 1
        except KubeError as exc:
            if _retryable(exc):
                raise RetryLater(f"{_describe(obj)}: {exc}") from exc
            outcome.problems.append(
                Problem("ApplyFailed", f"{_describe(obj)} refused: {exc.message}")
            )
            outcome.actions.append(
                Action(True, "ApplyFailed", f"{_describe(obj)} refused: {exc.message}")
            )
            break
    for api_version, kind, name in state.absent:
        try:
            if await client.delete(api_version, kind, ctx.namespace, name):
                outcome.actions.append(
                    Action(False, "Deleted", f"deleted {kind} {name} (pool disabled)")
                )
        except KubeError as exc:
            if _retryable(exc):
                raise RetryLater(f"{kind} {name}: {exc}") from exc
            outcome.problems.append(Problem("DeleteFailed", f"{kind} {name}: {exc.message}"))
    return deployments


async def _secret_problems(client: KubeClient, ctx: CrContext) -> list[Problem]:
    wanted: list[tuple[str, str | None, str]] = []
    if ctx.spec.hf_token_secret_ref is not None:
        ref = ctx.spec.hf_token_secret_ref
        wanted.append((ref.name, ref.key, "spec.hfTokenSecretRef"))
    if ctx.spec.router.api_key_secret_ref is not None:
        wanted.append(
            (ctx.spec.router.api_key_secret_ref.name, None, "spec.router.apiKeySecretRef")
        )
    problems = []
    for name, key, path in wanted:
        secret = await client.get("v1", "Secret", ctx.namespace, name)
        if secret is None:
            problems.append(
                Problem(
                    "SecretNotFound",
                    f"Secret {name!r} ({path}) not found in namespace {ctx.namespace}",
                )
            )
        elif (
            key is not None
            and key not in (secret.get("data") or {})
            and key not in (secret.get("stringData") or {})
        ):
            problems.append(
                Problem("SecretKeyNotFound", f"Secret {name!r} has no key {key!r} ({path}.key)")
            )
    return problems


def _pod_problems(pods: list[dict[str, Any]]) -> list[Problem]:
    problems = []
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        for cond in status.get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
            ):
                problems.append(
                    Problem(
                        "Unschedulable",
                        f"pod {name} cannot be scheduled: {cond.get('message', '')}",
                    )
                )
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in (
                "CreateContainerConfigError",
                "ImagePullBackOff",
                "ErrImagePull",
                "CrashLoopBackOff",
                "InvalidImageName",
            ):
                problems.append(
                    Problem(
                        str(waiting["reason"]),
                        f"pod {name}: {waiting.get('message', waiting['reason'])}",
                    )
                )
    return problems


async def _write_status(
    client: KubeClient,
    body: dict[str, Any],
    ctx: CrContext,
    *,
    deployments: dict[str, dict[str, Any] | None],
    problems: list[Problem],
    outcome: Outcome,
) -> None:
    pods = await client.list_objects(
        "v1",
        "Pod",
        ctx.namespace,
        label_selector=f"{DEPLOYMENT_LABEL}={ctx.name},app.kubernetes.io/component=engine",
    )
    all_problems = [*problems, *await _secret_problems(client, ctx), *_pod_problems(pods)]
    pools: dict[Mode, DeploymentObservation | None] = {}
    for mode in MODES:
        name = pool_object_name(ctx.name, mode)
        pools[mode] = (
            observe_deployment(deployments.get(name)) if ctx.spec.pool(mode).enabled else None
        )
    new = compute_status(
        generation=ctx.generation,
        model=ctx.spec.model.hf_id,
        endpoint=endpoint_url(ctx),
        pools=pools,
        router=observe_deployment(deployments.get(ctx.name)),
        problems=all_problems,
        previous=body.get("status"),
        now=_now(),
    )
    outcome.problems = all_problems
    if status_differs(body.get("status"), new):
        await client.patch_merge(
            API_VERSION, KIND, ctx.namespace, ctx.name, body={"status": new}, subresource="status"
        )
        outcome.status_written = True


async def _write_invalid(
    client: KubeClient, body: dict[str, Any], error: ValidationError, outcome: Outcome
) -> None:
    meta = body["metadata"]
    message = "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors(include_url=False)
    )
    problem = Problem("InvalidSpec", message)
    outcome.problems.append(problem)
    outcome.actions.append(Action(True, "InvalidSpec", message))
    condition = {
        "type": "Degraded",
        "status": "True",
        "reason": "InvalidSpec",
        "message": message,
        "lastTransitionTime": _now(),
        "observedGeneration": int(meta.get("generation") or 0),
    }
    current = body.get("status") or {}
    old = [c for c in current.get("conditions") or [] if c.get("type") == "Degraded"]
    if old and old[0].get("reason") == "InvalidSpec" and old[0].get("message") == message:
        return
    others = [c for c in current.get("conditions") or [] if c.get("type") != "Degraded"]
    status = {
        "observedGeneration": condition["observedGeneration"],
        "conditions": [*others, condition],
    }
    await client.patch_merge(
        API_VERSION,
        KIND,
        meta.get("namespace") or "default",
        meta["name"],
        body={"status": status},
        subresource="status",
    )
    outcome.status_written = True


async def reconcile(
    client: KubeClient,
    body: dict[str, Any],
    *,
    settings: OperatorSettings,
    engine_files: dict[str, str],
) -> Outcome:
    """Make the cluster match the CR, then write its status. Raises ``RetryLater``."""
    outcome = Outcome()
    try:
        ctx = context_from_body(body, settings)
    except ValidationError as exc:
        await _write_invalid(client, body, exc, outcome)
        return outcome
    try:
        state = desired_state(ctx, engine_files)
        applied = await _apply_all(client, ctx, state, outcome)
        deployments: dict[str, dict[str, Any] | None] = dict(applied)
        for name in [*state.pool_deployments.values(), ctx.name]:
            if name not in deployments:
                deployments[name] = await client.get("apps/v1", "Deployment", ctx.namespace, name)
        await _write_status(
            client,
            body,
            ctx,
            deployments=deployments,
            problems=list(outcome.problems),
            outcome=outcome,
        )
    except KubeError as exc:
        raise RetryLater(str(exc)) from exc
    return outcome


async def refresh_status(
    client: KubeClient, namespace: str, name: str, *, settings: OperatorSettings
) -> Outcome:
    """Re-read the CR and its Deployments and write the status if it changed (children's
    events call this; nothing is applied)."""
    outcome = Outcome()
    body = await client.get(API_VERSION, KIND, namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return outcome
    try:
        ctx = context_from_body(body, settings)
    except ValidationError:
        return outcome  # the reconcile reports it
    deployments: dict[str, dict[str, Any] | None] = {}
    for mode in MODES:
        if ctx.spec.pool(mode).enabled:
            pool_name = pool_object_name(name, mode)
            deployments[pool_name] = await client.get("apps/v1", "Deployment", namespace, pool_name)
    deployments[name] = await client.get("apps/v1", "Deployment", namespace, name)
    # Problems found by the last reconcile (a refused apply) stay until the next reconcile.
    kept = [
        Problem(c.get("reason", ""), c.get("message", ""))
        for c in (body.get("status") or {}).get("conditions") or []
        if c.get("type") == "Degraded"
        and c.get("status") == "True"
        and c.get("reason") in ("ApplyFailed", "DeleteFailed")
    ]
    await _write_status(client, body, ctx, deployments=deployments, problems=kept, outcome=outcome)
    return outcome

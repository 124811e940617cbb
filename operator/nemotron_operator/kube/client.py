"""An async Kubernetes API client over httpx: the I/O adapter under ``controller.reconcile``,
``controller.leader`` and ``controller.status_writer``.

Credentials come from a kubeconfig or the in-cluster ServiceAccount, loaded with the
``kubernetes`` package's config loaders (the only part of that package used here). Paths of
the handful of kinds the operator touches are in ``RESOURCES``; anything else is refused.

Errors: every non-2xx answer raises ``KubeError`` (``status``, ``reason``, ``message`` from the
apiserver's Status object); ``NotFound`` (404) and ``Conflict`` (409) are subclasses, since
callers treat them as outcomes, not failures. Transport failures raise httpx's own errors.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

__all__ = [
    "RESOURCES",
    "Conflict",
    "KubeClient",
    "KubeError",
    "NotFound",
    "RequestCounter",
    "resource_path",
]

# (apiVersion, kind) -> plural. Namespaced kinds only.
RESOURCES: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Pod"): "pods",
    ("v1", "Secret"): "secrets",
    ("v1", "Event"): "events",
    ("apps/v1", "Deployment"): "deployments",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("coordination.k8s.io/v1", "Lease"): "leases",
    ("serving.nemotron.dev/v1alpha1", "NemotronDeployment"): "nemotrondeployments",
}


class KubeError(Exception):
    """The apiserver answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    """404."""


class Conflict(KubeError):
    """409: already exists, or a stale resourceVersion."""


@dataclass
class RequestCounter:
    """Requests sent, by method (for the API-requests-per-CR figure)."""

    by_method: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_method.values())


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """``/api/v1/namespaces/ns/configmaps/name`` and friends."""
    plural = RESOURCES[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name is not None else path


def _ssl_context(cfg: k8s_client.Configuration) -> ssl.SSLContext | bool:
    if not cfg.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file and cfg.key_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    return context


class KubeClient:
    """Async client bound to one cluster and one field manager."""

    def __init__(
        self,
        cfg: k8s_client.Configuration,
        *,
        field_manager: str,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self._cfg = cfg
        self.field_manager = field_manager
        self.counter = RequestCounter()
        # Called with the HTTP method of every request (the operator counts them in a metric).
        self._on_request = on_request
        self._http = httpx.AsyncClient(
            base_url=cfg.host,
            verify=_ssl_context(cfg),
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    @classmethod
    def from_environment(
        cls,
        *,
        field_manager: str,
        kubeconfig: str | None = None,
        on_request: Callable[[str], None] | None = None,
    ) -> KubeClient:
        """In-cluster credentials when present, else the kubeconfig (``$KUBECONFIG``)."""
        cfg = k8s_client.Configuration()
        try:
            if kubeconfig:
                raise k8s_config.ConfigException("kubeconfig given explicitly")
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=cfg
            )
        return cls(cfg, field_manager=field_manager, on_request=on_request)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        if self._cfg.refresh_api_key_hook is not None:
            # In-cluster tokens are projected and rotate; the hook re-reads the file.
            self._cfg.refresh_api_key_hook(self._cfg)
        headers = {"Accept": "application/json"}
        # The kubernetes package's loaders (in-cluster and kubeconfig) store the token, "Bearer"
        # prefix included, as BearerToken; "authorization" is what hand-made configs use.
        token = self._cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        self.counter.by_method[method] = self.counter.by_method.get(method, 0) + 1
        if self._on_request is not None:
            self._on_request(method)
        content = None if body is None else json.dumps(body).encode("utf-8")
        response = await self._http.request(
            method,
            path,
            params=params,
            content=content,
            headers=self._headers(content_type or ("application/json" if content else None)),
        )
        if response.status_code >= 400:
            raise _error(response)
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", resource_path(api_version, kind, namespace, name))
        except NotFound:
            return None

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self._request(
            "GET", resource_path(api_version, kind, namespace), params=params
        )
        items: list[dict[str, Any]] = result.get("items") or []
        return items

    async def list_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Objects of ``kind`` in every namespace."""
        path = resource_path(api_version, kind, "_").replace("/namespaces/_", "")
        result = await self._request("GET", path)
        items: list[dict[str, Any]] = result.get("items") or []
        return items

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply under this client's field manager."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        params = {"fieldManager": self.field_manager, "force": "true" if force else "false"}
        return await self._request(
            "PATCH", path, params=params, body=obj, content_type="application/apply-patch+yaml"
        )

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        return await self._request(
            "POST", path, params={"fieldManager": self.field_manager}, body=obj
        )

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT (optimistic concurrency through ``metadata.resourceVersion``)."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return await self._request(
            "PUT", path, params={"fieldManager": self.field_manager}, body=obj
        )

    async def patch_merge(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        body: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch, optionally of a subresource (``scale``, ``status``)."""
        path = resource_path(api_version, kind, namespace, name)
        if subresource is not None:
            path = f"{path}/{subresource}"
        return await self._request(
            "PATCH",
            path,
            params={"fieldManager": self.field_manager},
            body=body,
            content_type="application/merge-patch+json",
        )

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (background propagation); False when it was already gone."""
        try:
            await self._request(
                "DELETE",
                resource_path(api_version, kind, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except NotFound:
            return False
        return True


def _error(response: httpx.Response) -> KubeError:
    reason, message = response.reason_phrase, response.text[:500]
    try:
        status = response.json()
    except ValueError:
        status = None
    if isinstance(status, dict):
        reason = str(status.get("reason") or reason)
        message = str(status.get("message") or message)
    kind: type[KubeError] = KubeError
    if response.status_code == 404:
        kind = NotFound
    elif response.status_code == 409:
        kind = Conflict
    return kind(response.status_code, reason, message)

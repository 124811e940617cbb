"""Endpoint discovery for one pool: a watch on the pool's Pods through the Kubernetes API
(list, then watch from the list's resourceVersion; re-list on 410 Gone or when the watch
ends), as the Gateway API inference extension's endpoint picker does -- not EndpointSlices,
not DNS. A pod is an endpoint when it is Ready, not terminating (no deletionTimestamp) and has
a podIP. When the API is unreachable the last known set stays in use.

Pure: ``pod_url``, ``apply_event``. Adapter: ``PodWatch`` (aiohttp, ``kubeapi.KubeAccess``),
which calls ``on_change(urls)`` whenever the ready set changes; ``server`` wires that to
``pools.Pool.set_endpoints``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from nemotron_operator.router.kubeapi import KubeAccess

__all__ = ["PodWatch", "apply_event", "pod_url", "ready_urls"]

log = logging.getLogger(__name__)

WATCH_SECONDS = 240
RETRY_SECONDS = 1.0


def pod_url(pod: Mapping[str, Any], port: int) -> str | None:
    """``http://<podIP>:<port>`` for a Ready, non-terminating pod with an IP, else None."""
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or status.get("phase") not in (None, "Running"):
        return None
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not ready:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


def apply_event(
    current: Mapping[str, str], event_type: str, pod: Mapping[str, Any], port: int
) -> dict[str, str]:
    """The pod-name -> URL map after one watch event (ADDED, MODIFIED, DELETED)."""
    name = str((pod.get("metadata") or {}).get("name", ""))
    out = dict(current)
    url = None if event_type == "DELETED" else pod_url(pod, port)
    if url is None:
        out.pop(name, None)
    else:
        out[name] = url
    return out


def ready_urls(pods: Mapping[str, str]) -> list[str]:
    return sorted(set(pods.values()))


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class PodWatch:
    def __init__(
        self,
        access: KubeAccess,
        *,
        namespace: str,
        label_selector: str,
        port: int,
        on_change: Callable[[list[str]], None],
    ) -> None:
        self._access = access
        self._namespace = namespace
        self._selector = label_selector
        self._port = port
        self._on_change = on_change
        self._pods: dict[str, str] = {}
        self._published: list[str] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def urls(self) -> list[str]:
        return ready_urls(self._pods)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pod-watch-{self._selector}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _publish(self) -> None:
        urls = self.urls
        if urls != self._published:
            self._published = urls
            self._on_change(urls)

    def _path(self) -> str:
        return f"{self._access.server}/api/v1/namespaces/{quote(self._namespace)}/pods"

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._access.ssl_context)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=WATCH_SECONDS + 30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while True:
                try:
                    version = await self._list(session)
                    while True:
                        version = await self._watch(session, version)
                except _Gone:
                    log.info("pod watch expired (410); listing again")
                    continue
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    # Keep serving the last known set: a brief API outage must not empty the
                    # pool.
                    log.warning("pod watch failed (%s); keeping %d endpoints", exc, len(self._pods))
                except Exception:
                    log.exception("pod watch broke; keeping %d endpoints", len(self._pods))
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self, session: aiohttp.ClientSession) -> str:
        params = {"labelSelector": self._selector} if self._selector else {}
        async with session.get(
            self._path(), params=params, headers=self._access.headers()
        ) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=await response.text()
                )
            body = await response.json()
        pods: dict[str, str] = {}
        for pod in body.get("items") or []:
            pods = apply_event(pods, "ADDED", pod, self._port)
        self._pods = pods
        self._publish()
        return str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, session: aiohttp.ClientSession, version: str) -> str:
        params = {
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        if self._selector:
            params["labelSelector"] = self._selector
        async with session.get(
            self._path(), params=params, headers=self._access.headers()
        ) as response:
            if response.status == 410:
                raise _Gone()
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=await response.text()
                )
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise ValueError(f"watch error: {obj.get('message')}")
                new_version = (obj.get("metadata") or {}).get("resourceVersion")
                if new_version:
                    version = str(new_version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._pods = apply_event(self._pods, kind, obj, self._port)
                    self._publish()
        return version

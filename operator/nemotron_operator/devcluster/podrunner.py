"""The pod runner: the local cluster's kubelet for what kwok does not simulate.

kwok gives each scheduled pod its IP and marks it Running (``manifests``). The pod runner
watches pods on the simulated nodes and, for each, materialises its volumes (ConfigMap, Secret,
projected ServiceAccount token, downward API, emptyDir, PVC) into a per-pod directory, starts
one local process per container (``podspec`` decides the argv; ``podexec`` bind-mounts the
volumes at their real paths in a private mount namespace), probes readiness and writes it to
the pod's status, restarts exited containers, and on deletion runs preStop, sends SIGTERM,
waits out the grace period, and only then removes the pod -- so graceful shutdown is real.

Logs: ``<state>/pods/<namespace>_<pod>/<container>.log``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from nemotron_operator.devcluster import processes
from nemotron_operator.devcluster.kubeletapi import serve_kubelet_api
from nemotron_operator.devcluster.podspec import ContainerPlan, plan_container
from nemotron_operator.devcluster.provisioner import provision_forever

__all__ = ["PodRunner", "run_forever"]

log = logging.getLogger("nemotron.podrunner")

Pod = dict[str, Any]


@dataclass
class Container:
    plan: ContainerPlan
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    restarts: int = 0
    last_exit: int | None = None


@dataclass
class RunningPod:
    namespace: str
    name: str
    uid: str
    directory: Path
    containers: dict[str, Container] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    terminating: bool = False
    published: str = ""


class PodRunner:
    def __init__(self, state: Path, *, server: str, tls: ssl.SSLContext, api_port: int) -> None:
        self.state = state
        self.pods_dir = state / "pods"
        self.api_port = api_port
        self.client = httpx.AsyncClient(base_url=server, verify=tls, timeout=httpx.Timeout(30.0))
        self.pods: dict[str, RunningPod] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    # -- API helpers ----------------------------------------------------------------------

    async def _get(self, path: str) -> dict[str, Any] | None:
        resp = await self.client.get(path)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return dict(resp.json())

    async def _lookup_object(self, ns: str, kind: str, name: str) -> dict[str, str] | None:
        plural = "secrets" if kind.startswith("secret") else "configmaps"
        obj = await self._get(f"/api/v1/namespaces/{ns}/{plural}/{name}")
        if obj is None:
            return None
        data: dict[str, str] = {}
        if plural == "secrets":
            for k, v in (obj.get("data") or {}).items():
                data[k] = base64.b64decode(v).decode("utf-8", "replace")
        else:
            data.update(obj.get("data") or {})
            for k, v in (obj.get("binaryData") or {}).items():
                data[k] = base64.b64decode(v).decode("utf-8", "replace")
        return data

    async def _token(self, pod: Pod, audience: str | None, seconds: int) -> str:
        ns, sa = pod["metadata"]["namespace"], pod["spec"].get("serviceAccountName") or "default"
        spec: dict[str, Any] = {
            "expirationSeconds": max(seconds, 600),
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        if audience:
            spec["audiences"] = [audience]
        resp = await self.client.post(
            f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        resp.raise_for_status()
        return str(resp.json()["status"]["token"])

    # -- volumes ---------------------------------------------------------------------------

    async def _write_keys(
        self, target: Path, data: dict[str, str], items: list[dict[str, Any]] | None
    ) -> None:
        target.mkdir(parents=True, exist_ok=True)
        chosen = (
            [(i["key"], i.get("path", i["key"])) for i in items]
            if items
            else [(k, k) for k in data]
        )
        for key, rel in chosen:
            if key not in data:
                raise LookupError(f"key {key!r} not found")
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[key])

    async def _materialise(self, pod: Pod, directory: Path) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        dirs: dict[str, str] = {}
        for vol in pod["spec"].get("volumes") or []:
            target = directory / "volumes" / vol["name"]
            if "configMap" in vol or "secret" in vol:
                kind = "configMap" if "configMap" in vol else "secret"
                src = vol[kind]
                name = src.get("name") or src.get("secretName")
                data = await self._lookup_object(ns, kind, name)
                if data is None:
                    if src.get("optional"):
                        target.mkdir(parents=True, exist_ok=True)
                    else:
                        raise LookupError(f'{kind} "{name}" not found (volume {vol["name"]})')
                else:
                    await self._write_keys(target, data, src.get("items"))
            elif "projected" in vol:
                target.mkdir(parents=True, exist_ok=True)
                for source in vol["projected"].get("sources") or []:
                    if "serviceAccountToken" in source:
                        sat = source["serviceAccountToken"]
                        token = await self._token(
                            pod, sat.get("audience"), int(sat.get("expirationSeconds", 3600))
                        )
                        (target / sat["path"]).write_text(token)
                    elif "configMap" in source or "secret" in source:
                        kind = "configMap" if "configMap" in source else "secret"
                        data = await self._lookup_object(ns, kind, source[kind]["name"])
                        if data is None:
                            if not source[kind].get("optional"):
                                raise LookupError(f'{kind} "{source[kind]["name"]}" not found')
                            continue
                        await self._write_keys(target, data, source[kind].get("items"))
                    elif "downwardAPI" in source:
                        self._downward(pod, target, source["downwardAPI"].get("items") or [])
            elif "downwardAPI" in vol:
                target.mkdir(parents=True, exist_ok=True)
                self._downward(pod, target, vol["downwardAPI"].get("items") or [])
            elif "persistentVolumeClaim" in vol:
                # A claim outlives its pods: one directory per claim, shared by its users.
                target = self.state / "pvcs" / ns / vol["persistentVolumeClaim"]["claimName"]
                target.mkdir(parents=True, exist_ok=True)
            else:  # emptyDir, hostPath and the rest: a fresh directory
                target.mkdir(parents=True, exist_ok=True)
            dirs[vol["name"]] = str(target)
        return dirs

    @staticmethod
    def _downward(pod: Pod, target: Path, items: list[dict[str, Any]]) -> None:
        meta = pod["metadata"]
        for item in items:
            path = (item.get("fieldRef") or {}).get("fieldPath", "")
            value = {
                "metadata.namespace": meta["namespace"],
                "metadata.name": meta["name"],
                "metadata.uid": meta.get("uid", ""),
            }.get(path, "")
            if path == "metadata.labels":
                value = "\n".join(f'{k}="{v}"' for k, v in (meta.get("labels") or {}).items())
            (target / item["path"]).write_text(value)

    # -- status ----------------------------------------------------------------------------

    async def _publish(
        self, pod: RunningPod, *, waiting: str | None = None, message: str = ""
    ) -> None:
        statuses = []
        for name, c in pod.containers.items():
            status: dict[str, Any] = {
                "name": name,
                "image": "",
                "ready": c.ready,
                "restartCount": c.restarts,
                "started": c.proc is not None and c.proc.returncode is None,
            }
            if c.proc is not None and c.proc.returncode is None:
                status["state"] = {"running": {"startedAt": _now()}}
            elif c.last_exit is not None:
                status["state"] = {
                    "waiting": {"reason": "CrashLoopBackOff", "message": f"exited {c.last_exit}"}
                }
            else:
                status["state"] = {
                    "waiting": {"reason": waiting or "ContainerCreating", "message": message}
                }
            statuses.append(status)
        all_ready = (
            bool(pod.containers)
            and all(c.ready for c in pod.containers.values())
            and not pod.terminating
        )
        key = json.dumps(
            [
                all_ready,
                [
                    (s["name"], s["ready"], s["restartCount"], list(s["state"]), waiting)
                    for s in statuses
                ],
            ]
        )
        if key == pod.published:
            return
        ready = "True" if all_ready else "False"
        now = _now()
        conditions = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
            {"type": "Ready", "status": ready, "lastTransitionTime": now},
        ]
        current = await self._get(f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}")
        if current is None or current["metadata"]["uid"] != pod.uid:
            return
        images = {c["name"]: c.get("image", "") for c in current["spec"]["containers"]}
        for s in statuses:
            s["image"] = images.get(s["name"], "")
        resp = await self.client.patch(
            f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status",
            content=json.dumps(
                {"status": {"conditions": conditions, "containerStatuses": statuses}}
            ),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if resp.status_code < 300:
            pod.published = key

    # -- lifecycle -------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api_port),
        }

    async def _start_container(self, pod: RunningPod, c: Container) -> None:
        spec_file = pod.directory / f"{c.plan.name}.spec.json"
        spec_file.write_text(
            json.dumps(
                {
                    "argv": c.plan.argv,
                    "env": c.plan.env,
                    "cwd": c.plan.working_dir or str(_repo_root()),
                    "mounts": [m.__dict__ for m in c.plan.mounts],
                    "keep_visible": [str(_repo_root()), sys.prefix, str(self.state)],
                }
            )
        )
        logf = (pod.directory / f"{c.plan.name}.log").open("ab")
        argv = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-m",
            "nemotron_operator.devcluster.podexec",
            str(spec_file),
        ]
        if os.geteuid() != 0:  # an unprivileged user gets a user namespace to mount in
            argv[1:1] = ["--user", "--map-root-user"]
        c.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=logf,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        logf.close()
        pids = self.pods_dir / "pids"
        pids.mkdir(parents=True, exist_ok=True)
        (pids / f"{pod.uid}-{c.plan.name}.pid").write_text(
            f"{c.proc.pid}\n{Path(c.plan.argv[0]).name}"
        )
        c.ready = c.plan.readiness is None

    async def _probe(self, pod_ip: str, c: Container) -> bool:
        probe = c.plan.readiness
        if probe is None:
            return True
        try:
            if probe.path is not None:
                async with httpx.AsyncClient(timeout=1.0) as client:
                    resp = await client.get(f"http://{pod_ip}:{probe.port}{probe.path}")
                return 200 <= resp.status_code < 400
            _, writer = await asyncio.wait_for(asyncio.open_connection(pod_ip, probe.port), 1.0)
            writer.close()
            return True
        except (OSError, httpx.HTTPError, TimeoutError):
            return False

    async def _run_pod(self, pod: RunningPod, spec: Pod) -> None:
        pod_ip = spec["status"]["podIP"]
        while not pod.terminating:
            try:
                volume_dirs = await self._materialise(spec, pod.directory)

                async def lookup(kind: str, name: str, key: str) -> str | None:
                    data = await self._lookup_object(pod.namespace, kind, name)
                    if data is None:
                        return None
                    return (
                        "\n".join(f"{k}={v}" for k, v in data.items())
                        if key == "*"
                        else data.get(key)
                    )

                cache: dict[tuple[str, str, str], str | None] = {}
                for container in spec["spec"]["containers"]:
                    for ref in _refs(container):
                        cache[ref] = await lookup(*ref)
                for container in spec["spec"]["containers"]:
                    plan = plan_container(
                        spec,
                        container,
                        volume_dirs=volume_dirs,
                        base_env=self._base_env(),
                        lookup=cache_lookup(cache),
                    )
                    pod.containers[plan.name] = Container(plan=plan)
                break
            except (LookupError, ValueError) as exc:
                for container in spec["spec"]["containers"]:
                    pod.containers.setdefault(
                        container["name"], Container(plan=ContainerPlan(container["name"], [], {}))
                    )
                await self._publish(pod, waiting="CreateContainerConfigError", message=str(exc))
                await asyncio.sleep(2)
        for c in pod.containers.values():
            await self._start_container(pod, c)
        await self._publish(pod)
        backoff: dict[str, float] = {}
        while not pod.terminating:
            for c in pod.containers.values():
                assert c.proc is not None
                if c.proc.returncode is not None:
                    c.ready, c.last_exit = False, c.proc.returncode
                    if spec["spec"].get("restartPolicy", "Always") == "Never":
                        continue
                    due = backoff.setdefault(
                        c.plan.name, time.monotonic() + min(10.0, 1.0 * 2**c.restarts)
                    )
                    if time.monotonic() >= due:
                        backoff.pop(c.plan.name)
                        c.restarts += 1
                        # As a kubelet does: make the volumes again before a restart, so a
                        # container that died on a missing file can come back.
                        with contextlib.suppress(LookupError, OSError, httpx.HTTPError):
                            await self._materialise(spec, pod.directory)
                        await self._start_container(pod, c)
                else:
                    c.ready = await self._probe(pod_ip, c)
            await self._publish(pod)
            await asyncio.sleep(
                min(
                    (c.plan.readiness.period_seconds if c.plan.readiness else 1.0)
                    for c in pod.containers.values()
                )
                if pod.containers
                else 1.0
            )

    async def _terminate(self, pod: RunningPod, grace: float, *, delete: bool) -> None:
        pod.terminating = True
        deadline = time.monotonic() + grace
        with contextlib.suppress(Exception):
            await self._publish(pod)
        pre_stops = [c.plan.pre_stop for c in pod.containers.values() if c.plan.pre_stop and c.proc]
        if pre_stops:
            procs = [
                await asyncio.create_subprocess_exec(
                    *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
                )
                for cmd in pre_stops
            ]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(p.wait() for p in procs)),
                    max(0.0, deadline - time.monotonic()),
                )
        for c in pod.containers.values():
            if c.proc and c.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGTERM)
        for c in pod.containers.values():
            if c.proc and c.proc.returncode is None:
                try:
                    await asyncio.wait_for(c.proc.wait(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(c.proc.pid, signal.SIGKILL)
                    await c.proc.wait()
        if pod.task and pod.task is not asyncio.current_task():
            pod.task.cancel()
        for c in pod.containers.values():
            (self.pods_dir / "pids" / f"{pod.uid}-{c.plan.name}.pid").unlink(missing_ok=True)
        if delete:
            await self.client.request(
                "DELETE",
                f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
                json={"gracePeriodSeconds": 0, "preconditions": {"uid": pod.uid}},
            )
        self.pods.pop(pod.uid, None)
        # A new pod of the same name (a re-created bare pod) shares the directory: keep it.
        if not any(p.directory == pod.directory for p in self.pods.values()):
            shutil.rmtree(pod.directory, ignore_errors=True)

    def _spawn(self, coro: Any) -> asyncio.Future[None]:
        task: asyncio.Future[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _handle(self, event_type: str, pod: Pod) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        running = self.pods.get(uid)
        if event_type == "DELETED":
            if running and not running.terminating:
                self._spawn(self._terminate(running, 2.0, delete=False))
            return
        if meta.get("deletionTimestamp"):
            if running is None:
                self._spawn(self._finalize_unstarted(pod))
            elif not running.terminating:
                grace = float(meta.get("deletionGracePeriodSeconds") or 30)
                self._spawn(self._terminate(running, grace, delete=True))
            return
        if running is None and pod.get("status", {}).get("podIP") and pod["spec"].get("nodeName"):
            directory = self.pods_dir / f"{meta['namespace']}_{meta['name']}"
            directory.mkdir(parents=True, exist_ok=True)
            rp = RunningPod(
                namespace=meta["namespace"], name=meta["name"], uid=uid, directory=directory
            )
            self.pods[uid] = rp
            rp.task = self._spawn(self._guard(rp, pod))  # type: ignore[assignment]

    async def _guard(self, pod: RunningPod, spec: Pod) -> None:
        try:
            await self._run_pod(pod, spec)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s failed", pod.namespace, pod.name)

    async def _finalize_unstarted(self, pod: Pod) -> None:
        meta = pod["metadata"]
        await self.client.request(
            "DELETE",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            json={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
        )

    async def watch(self) -> None:
        params = {"fieldSelector": "spec.nodeName!="}
        while True:
            try:
                listed = (await self.client.get("/api/v1/pods", params=params)).json()
                for pod in listed["items"]:
                    self._handle("ADDED", pod)
                rv = listed["metadata"]["resourceVersion"]
                while True:
                    async with self.client.stream(
                        "GET",
                        "/api/v1/pods",
                        params=params
                        | {
                            "watch": "1",
                            "resourceVersion": rv,
                            "allowWatchBookmarks": "true",
                            "timeoutSeconds": "300",
                        },
                        timeout=httpx.Timeout(30.0, read=330.0),
                    ) as resp:
                        if resp.status_code != 200:
                            break
                        async for line in resp.aiter_lines():
                            if not line:
                                continue
                            event = json.loads(line)
                            if event["type"] == "ERROR":
                                raise _Relist()
                            rv = event["object"]["metadata"].get("resourceVersion", rv)
                            if event["type"] != "BOOKMARK":
                                self._handle(event["type"], event["object"])
            except _Relist:
                continue
            except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                log.warning("watch failed (%s); relisting", exc)
                await asyncio.sleep(1)

    async def shutdown(self) -> None:
        await asyncio.gather(
            *(self._terminate(p, 5.0, delete=False) for p in list(self.pods.values())),
            return_exceptions=True,
        )
        await self.client.aclose()


class _Relist(Exception):
    pass


def cache_lookup(cache: dict[tuple[str, str, str], str | None]) -> Any:
    """A synchronous lookup over values fetched beforehand (the pod spec planner is pure)."""
    return lambda kind, name, key: cache.get((kind, name, key))


def _refs(container: dict[str, Any]) -> list[tuple[str, str, str]]:
    refs = []
    for item in container.get("env") or []:
        src = item.get("valueFrom") or {}
        for kind in ("secretKeyRef", "configMapKeyRef"):
            if kind in src:
                refs.append((kind, src[kind]["name"], src[kind]["key"]))
    for source in container.get("envFrom") or []:
        for kind in ("configMapRef", "secretRef"):
            if kind in source:
                refs.append((kind, source[kind]["name"], "*"))
    return refs


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _repo_root() -> Path:
    from nemotron_operator.devcluster.cluster import repo_root

    return repo_root()


def run_forever(state: Path) -> int:
    """Entry point of ``devcluster podrunner``: runs until SIGTERM, then stops every pod process."""
    from nemotron_operator.devcluster.cluster import Cluster

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    cluster = Cluster(state)
    # A runner killed hard leaves its pod processes: stop them before adopting the pods again.
    processes.stop_all(state / "pods", ())

    async def main() -> None:
        runner = PodRunner(
            state,
            server=cluster.server,
            tls=cluster.tls_context(),
            api_port=cluster.ports.apiserver,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        nodes = (await runner.client.get("/api/v1/nodes")).json()["items"]
        addresses = [
            a["address"]
            for n in nodes
            for a in n.get("status", {}).get("addresses") or []
            if a["type"] == "InternalIP"
        ]
        kubelet = await serve_kubelet_api(
            pods_dir=state / "pods",
            addresses=addresses,
            cert=cluster.pki.serving_crt,
            key=cluster.pki.serving_key,
        )
        watcher = asyncio.ensure_future(runner.watch())
        provisioner = asyncio.ensure_future(provision_forever(runner.client))
        await stop.wait()
        watcher.cancel()
        provisioner.cancel()
        await kubelet.cleanup()
        await runner.shutdown()

    asyncio.run(main())
    return 0

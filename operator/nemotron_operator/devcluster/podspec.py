"""Pure translation of a Pod into what the pod runner starts: per container, the argv, the
environment, the bind mounts and the readiness check.

Image-specific cases are ``CommandMapper`` hooks: a vLLM image runs the engine emulator with
the same arguments, our own image runs its entrypoint (``nemotron-operator``) from the
project's environment, and anything else runs its command as given (with the project's venv
first on PATH). Each mapper also makes the process bind the pod's IP, since every pod shares
the host's network here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ContainerPlan",
    "Mount",
    "Probe",
    "default_mappers",
    "plan_container",
]

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class Mount:
    """Bind ``source`` (a file or directory in the pod's state dir) at ``target``."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Probe:
    """A readiness check: an HTTP GET (``path`` set) or a TCP connect."""

    port: int
    path: str | None = None
    period_seconds: float = 1.0
    initial_delay_seconds: float = 0.0


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount] = field(default_factory=list)
    readiness: Probe | None = None
    pre_stop: list[str] | None = None
    working_dir: str | None = None


# (image, command+args, pod IP) -> argv, or None when the mapper does not handle the image.
CommandMapper = Callable[[str, list[str], str], list[str] | None]


def _venv_bin(name: str) -> str:
    """A program of the project's environment (the one running the pod runner)."""
    return str(Path(sys.executable).parent / name)


def vllm_mapper(image: str, argv: list[str], pod_ip: str) -> list[str] | None:
    """``vllm serve <model> <flags>`` in a vLLM image -> the engine emulator with those flags."""
    if "vllm" not in image.rsplit("/", 1)[-1]:
        return None
    if argv[:2] == ["vllm", "serve"]:
        rest = argv[2:]
    elif argv[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]:
        rest = argv[3:]
    else:
        rest = argv
    return [_venv_bin("nemotron-operator"), "emulate-engine", *rest, "--host", pod_ip]


def own_image_mapper(image: str, argv: list[str], pod_ip: str) -> list[str] | None:
    """Our image: its ENTRYPOINT ``nemotron-operator`` run from the project's environment."""
    if "nemotron-operator" not in image.rsplit("/", 1)[-1]:
        return None
    args = argv[1:] if argv and argv[0] == "nemotron-operator" else argv
    out = [_venv_bin("nemotron-operator"), *args]
    if args and args[0] == "router" and "--host" not in args:
        out += ["--host", pod_ip]
    return out


def default_mapper(image: str, argv: list[str], pod_ip: str) -> list[str] | None:
    """Any other image: its command as given; the program reads ``POD_IP`` to bind."""
    if not argv:
        return None
    head = argv[0]
    if "/" not in head and Path(_venv_bin(head)).exists():
        head = _venv_bin(head)
    return [head, *argv[1:]]


def default_mappers() -> list[CommandMapper]:
    return [vllm_mapper, own_image_mapper, default_mapper]


def _field_ref(pod: Mapping[str, Any], path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    values = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
    }
    if path.startswith("metadata.labels['"):
        return str(meta.get("labels", {}).get(path[len("metadata.labels['") : -2], ""))
    if path.startswith("metadata.annotations['"):
        return str(meta.get("annotations", {}).get(path[len("metadata.annotations['") : -2], ""))
    return str(values.get(path, ""))


LookupKey = Callable[[str, str, str], str | None]  # (kind, name, key) -> value or None


def _env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    lookup: LookupKey,
    base: Mapping[str, str],
) -> dict[str, str]:
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind in ("configMapRef", "secretRef"):
            if kind in source:
                pairs = lookup(kind, source[kind]["name"], "*")
                for line in (pairs or "").splitlines():
                    key, _, val = line.partition("=")
                    env[prefix + key] = val
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = _expand(str(item["value"]), env)
        elif "valueFrom" in item:
            ref = item["valueFrom"]
            value: str | None = None
            if "fieldRef" in ref:
                value = _field_ref(pod, ref["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in ref:
                value = lookup(
                    "secretKeyRef", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
                )
            elif "configMapKeyRef" in ref:
                value = lookup(
                    "configMapKeyRef", ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
                )
            if value is None:
                optional = next(iter(ref.values())).get("optional", False)
                if not optional:
                    raise LookupError(f"env {item['name']}: referenced value not found")
                continue
            env[item["name"]] = value
        else:
            env[item["name"]] = ""
    return env


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in env values, command and args."""
    for key, value in env.items():
        text = text.replace(f"$({key})", value)
    return text


def _probe(container: Mapping[str, Any]) -> Probe | None:
    probe = container.get("readinessProbe")
    if not probe:
        return None
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}

    def port_of(value: object) -> int:
        return (
            int(ports[value]) if isinstance(value, str) and not value.isdigit() else int(str(value))
        )

    period = float(probe.get("periodSeconds", 10))
    # Probe at most once a second here, so tests don't wait out production periods.
    period = min(period, 1.0)
    delay = min(float(probe.get("initialDelaySeconds", 0)), 1.0)
    if "httpGet" in probe:
        get = probe["httpGet"]
        return Probe(
            port=port_of(get["port"]),
            path=get.get("path", "/"),
            period_seconds=period,
            initial_delay_seconds=delay,
        )
    if "tcpSocket" in probe:
        return Probe(
            port=port_of(probe["tcpSocket"]["port"]),
            period_seconds=period,
            initial_delay_seconds=delay,
        )
    return None


def plan_container(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    volume_dirs: Mapping[str, str],
    lookup: LookupKey,
    base_env: Mapping[str, str],
    mappers: Sequence[CommandMapper] | None = None,
) -> ContainerPlan:
    """The process to run for ``container`` of ``pod`` (raises LookupError/ValueError when it can't)."""
    pod_ip = pod.get("status", {}).get("podIP", "")
    env = _env(pod, container, lookup=lookup, base={**base_env, "POD_IP": pod_ip})
    argv = [
        _expand(str(a), env)
        for a in [*(container.get("command") or []), *(container.get("args") or [])]
    ]
    image = str(container.get("image", ""))
    for mapper in mappers or default_mappers():
        mapped = mapper(image, argv, pod_ip)
        if mapped is not None:
            argv = mapped
            break
    else:
        raise ValueError(f"container {container['name']}: no command to run for image {image!r}")
    mounts = []
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in volume_dirs:
            raise LookupError(
                f"container {container['name']}: volume {vm['name']!r} is not defined"
            )
        source = volume_dirs[vm["name"]]
        if vm.get("subPath"):
            source = os.path.join(source, vm["subPath"])
        mounts.append(
            Mount(source=source, target=vm["mountPath"], read_only=bool(vm.get("readOnly")))
        )
    pre_stop = None
    lifecycle = (container.get("lifecycle") or {}).get("preStop") or {}
    if "exec" in lifecycle:
        pre_stop = [str(a) for a in lifecycle["exec"]["command"]]
    elif "sleep" in lifecycle:
        pre_stop = ["sleep", str(lifecycle["sleep"]["seconds"])]
    return ContainerPlan(
        name=container["name"],
        argv=argv,
        env=env,
        mounts=mounts,
        readiness=_probe(container),
        pre_stop=pre_stop,
        working_dir=container.get("workingDir"),
    )

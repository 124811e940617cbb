"""Pure builders for what the local cluster creates: kubeconfigs, simulated GPU nodes and
kwok's configuration (its stages).

kwok's stages decide what kwok does to nodes and pods. Ours keep nodes Ready (with a lease)
and, for pods, only do what a kubelet's sandbox setup does: give a scheduled pod its IP from
the node's podCIDR and mark it Running with containers started but NOT ready. Readiness,
restarts and the end of graceful deletion belong to the pod runner (``podrunner``), which runs
the real processes, probes them and removes the pod once they have exited, as a kubelet would.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

__all__ = ["ClusterOptions", "gpu_nodes", "kubeconfig", "kwok_config"]


@dataclass(frozen=True)
class ClusterOptions:
    """Shape of the simulated fleet."""

    nodes: int = 4
    gpus_per_node: int = 8
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"
    gpu_memory_mib: int = 81559
    cpus_per_node: int = 64
    memory_per_node: str = "1024Gi"


def kubeconfig(*, server: str, ca: str, cert: str, key: str, user: str = "admin") -> str:
    """A kubeconfig with one cluster, user and context, named ``nemotron-dev``."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "nemotron-dev", "cluster": {"server": server, "certificate-authority": ca}}
        ],
        "users": [{"name": user, "user": {"client-certificate": cert, "client-key": key}}],
        "contexts": [
            {"name": "nemotron-dev", "context": {"cluster": "nemotron-dev", "user": user}}
        ],
        "current-context": "nemotron-dev",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def node_name(index: int) -> str:
    return f"gpu-node-{index}"


def gpu_nodes(options: ClusterOptions) -> list[dict[str, object]]:
    """Node objects advertising ``nvidia.com/gpu`` with GPU feature-discovery style labels."""
    nodes: list[dict[str, object]] = []
    for i in range(options.nodes):
        resources = {
            "cpu": str(options.cpus_per_node),
            "memory": options.memory_per_node,
            "pods": "110",
            "nvidia.com/gpu": str(options.gpus_per_node),
        }
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node_name(i),
                    "annotations": {
                        "kwok.x-k8s.io/node": "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "kubernetes.io/hostname": node_name(i),
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                        "nvidia.com/gpu.present": "true",
                        "nvidia.com/gpu.product": options.gpu_product,
                        "nvidia.com/gpu.memory": str(options.gpu_memory_mib),
                        "nvidia.com/gpu.count": str(options.gpus_per_node),
                    },
                },
                # Loopback pod addresses: every pod process binds its own 127.20.<i>.<n>.
                "spec": {"podCIDR": f"127.20.{i}.0/24", "podCIDRs": [f"127.20.{i}.0/24"]},
                "status": {
                    "capacity": resources,
                    "allocatable": resources,
                    "addresses": [{"type": "InternalIP", "address": f"127.21.0.{i + 1}"}],
                },
            }
        )
    return nodes


_NODE_STATUS = """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
allocatable:
{{ YAML .status.allocatable 1 }}
capacity:
{{ YAML .status.capacity 1 }}
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: {{ printf "kwok-%s" Version }}
  containerRuntimeVersion: nemotron-podrunner
phase: Running
"""

_POD_STARTED = """\
{{ $now := Now }}
conditions:
- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    waiting: {reason: ContainerCreating}
{{ end }}
{{ with NodeIPWith .spec.nodeName }}
hostIP: {{ . | Quote }}
{{ end }}
{{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
{{ with $podIPs }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""


def _stage(
    name: str, kind: str, expressions: list[dict[str, object]], template: str, *, delay_ms: int = 0
) -> dict[str, object]:
    spec: dict[str, object] = {
        "resourceRef": {"apiGroup": "v1", "kind": kind},
        "selector": {"matchExpressions": expressions},
        "next": {"statusTemplate": template},
    }
    if delay_ms:
        spec["delay"] = {"durationMilliseconds": delay_ms, "jitterDurationMilliseconds": delay_ms}
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": spec,
    }


def kwok_config(*, server_address: str) -> str:
    """kwok's configuration file: options plus our node and pod stages (multi-document YAML)."""
    ready_is_true: dict[str, object] = {
        "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
        "operator": "In",
        "values": ["True"],
    }
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            "options": {
                "manageAllNodes": True,
                "serverAddress": server_address,
                "nodeLeaseDurationSeconds": 40,
                # With a config file kwok applies no defaults to these; zero is refused.
                "nodeLeaseParallelism": 4,
                "nodePlayStageParallelism": 4,
                "podPlayStageParallelism": 8,
                "podsOnNodeSyncParallelism": 4,
                "enableCRDs": [],
            },
        },
        _stage(
            "node-initialize",
            "Node",
            [{**ready_is_true, "operator": "NotIn"}],
            _NODE_STATUS,
        ),
        _stage("node-heartbeat", "Node", [ready_is_true], _NODE_STATUS, delay_ms=20000),
        _stage(
            "pod-start",
            "Pod",
            [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.podIP", "operator": "DoesNotExist"},
            ],
            _POD_STARTED,
        ),
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)

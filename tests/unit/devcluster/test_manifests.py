"""Simulated GPU nodes and kwok's configuration."""

from __future__ import annotations

import ipaddress

import yaml
from hypothesis import given
from hypothesis import strategies as st

from nemotron_operator.devcluster.manifests import ClusterOptions, gpu_nodes, kwok_config


@given(nodes=st.integers(1, 64), gpus=st.integers(1, 16))
def test_nodes_advertise_gpus_and_have_disjoint_loopback_pod_ranges(nodes: int, gpus: int) -> None:
    made = gpu_nodes(ClusterOptions(nodes=nodes, gpus_per_node=gpus))
    assert len(made) == nodes
    cidrs = [ipaddress.ip_network(n["spec"]["podCIDR"]) for n in made]  # type: ignore[index]
    for i, cidr in enumerate(cidrs):
        assert cidr.subnet_of(ipaddress.ip_network("127.20.0.0/16"))
        assert all(not cidr.overlaps(other) for other in cidrs[i + 1 :])
    for node in made:
        assert node["status"]["capacity"]["nvidia.com/gpu"] == str(gpus)  # type: ignore[index]
        assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"  # type: ignore[index]


def test_gpu_product_and_memory_labels() -> None:
    (node,) = gpu_nodes(ClusterOptions(nodes=1, gpu_product="NVIDIA-H200", gpu_memory_mib=143771))
    labels = node["metadata"]["labels"]  # type: ignore[index]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H200"
    assert labels["nvidia.com/gpu.memory"] == "143771"


def test_kwok_leaves_readiness_and_deletion_to_the_pod_runner() -> None:
    docs = list(yaml.safe_load_all(kwok_config(server_address="127.0.0.1:1")))
    assert docs[0]["kind"] == "KwokConfiguration"
    stages = {d["metadata"]["name"]: d for d in docs[1:]}
    assert set(stages) == {"node-initialize", "node-heartbeat", "pod-start"}
    pod_start = stages["pod-start"]["spec"]["next"]["statusTemplate"]
    assert 'type: Ready, status: "False"' in pod_start
    assert "podIP:" in pod_start
    # No stage deletes pods: graceful deletion is the pod runner's, after the process exits.
    assert all(not d["spec"]["next"].get("delete") for d in stages.values())

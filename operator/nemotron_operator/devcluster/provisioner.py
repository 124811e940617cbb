"""A dynamic volume provisioner for the local cluster's default StorageClass.

Every PersistentVolumeClaim of the class ``devcluster-local`` (the default class) gets a
PersistentVolume made for it and pre-bound to it, as a CSI provisioner would; the PV controller
in kube-controller-manager then binds the pair. When the claim goes, its Released volume is
deleted. The pod runner mounts a claim as one directory per claim (``<state>/pvcs/<ns>/<name>``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

__all__ = ["STORAGE_CLASS", "provision_forever", "storage_class", "volume_for"]

log = logging.getLogger("nemotron.provisioner")

STORAGE_CLASS = "devcluster-local"
PROVISIONER = "devcluster.nemotron.dev/local"


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }


def volume_for(claim: dict[str, Any]) -> dict[str, Any]:
    """The PV that satisfies ``claim`` (pure): same size and modes, pre-bound by claimRef."""
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "hostPath": {"path": f"/devcluster/pvcs/{meta['namespace']}/{meta['name']}"},
        },
    }


async def provision_once(client: httpx.AsyncClient) -> None:
    claims = (await client.get("/api/v1/persistentvolumeclaims")).json()["items"]
    volumes = (await client.get("/api/v1/persistentvolumes")).json()["items"]
    existing = {v["metadata"]["name"] for v in volumes}
    for claim in claims:
        cls = claim["spec"].get("storageClassName")
        if cls != STORAGE_CLASS or claim.get("status", {}).get("phase") == "Bound":
            continue
        if claim["spec"].get("volumeName"):
            continue
        volume = volume_for(claim)
        if volume["metadata"]["name"] not in existing:
            resp = await client.post("/api/v1/persistentvolumes", json=volume)
            if resp.status_code not in (201, 409):
                log.warning("provisioning %s failed: %s", volume["metadata"]["name"], resp.text)
    for volume in volumes:
        ours = (
            volume["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by")
            == PROVISIONER
        )
        if ours and volume.get("status", {}).get("phase") in ("Released", "Failed"):
            await client.delete(f"/api/v1/persistentvolumes/{volume['metadata']['name']}")


async def provision_forever(client: httpx.AsyncClient, *, interval: float = 1.0) -> None:
    while True:
        try:
            await provision_once(client)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("provisioner pass failed: %s", exc)
        await asyncio.sleep(interval)

"""``CrContext``: one NemotronDeployment as the builders see it (identity, validated spec,
operator settings). Built once per reconcile by ``controller.desired.context_from_body``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemotron_operator.api.models import NemotronDeploymentSpec
from nemotron_operator.controller.naming import owner_reference
from nemotron_operator.controller.settings import OperatorSettings

__all__ = ["CrContext"]


@dataclass(frozen=True)
class CrContext:
    """Identity and spec of the CR being reconciled."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: NemotronDeploymentSpec
    settings: OperatorSettings

    def metadata(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """Metadata of a child object: namespace, contract labels, controller owner reference."""
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(self.name, self.uid)],
        }

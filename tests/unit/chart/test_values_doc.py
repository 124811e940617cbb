"""docs/helm.md's values table is generated from values.schema.json and values.yaml by
scripts/chart-values-doc; this fails when someone changed the chart and not the doc."""

from __future__ import annotations

import subprocess
import sys

from tests.unit.chart.helm import REPO

SCRIPT = REPO / "scripts" / "chart-values-doc"


def test_values_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr + "\n(run scripts/chart-values-doc)"


def test_every_default_is_documented() -> None:
    import yaml

    values = yaml.safe_load((REPO / "charts/nemotron-operator/values.yaml").read_text())
    doc = (REPO / "docs" / "helm.md").read_text(encoding="utf-8")

    def leaves(node: object, prefix: str) -> list[str]:
        if isinstance(node, dict) and node:
            return [k for key, v in node.items() for k in leaves(v, f"{prefix}{key}.")]
        return [prefix.rstrip(".")]

    for key in leaves(values, ""):
        # A key is documented itself or through its documented parent (e.g. `resources`).
        parts = key.split(".")
        assert any(f"`{'.'.join(parts[:n])}`" in doc for n in range(len(parts), 0, -1)), key

"""PNG figures of simulated runs (matplotlib, headless): load, replicas and queue over time.

``plot_trace`` draws one trace's runs (one per policy) from ``comparison.Row``s into a PNG;
``cli`` calls it for docs/img/. Imported only by the CLI, so the operator never loads
matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from nemotron_operator.autoscaler.comparison import Row

__all__ = ["plot_trace"]

_COLOURS = {"ours": "tab:green", "keda": "tab:red", "kubeai": "tab:blue"}


def _summed(series: Sequence[Sequence[float]]) -> list[float]:
    return [sum(values) for values in zip(*series, strict=True)]


def plot_trace(
    rows: Sequence[Row], path: Path, *, title: str, window: tuple[float, float] | None = None
) -> Path:
    """Three panels (arrivals, replicas, queue) for the runs in ``rows`` of one trace."""
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    first = rows[0].result
    t = first.pools[0].series_t
    scale, unit = (3600.0, "h") if window is None else (1.0, "s")
    xs = [x / scale for x in t]
    keep = [window is None or window[0] <= x < window[1] for x in t]

    def cut(values: Sequence[float]) -> tuple[list[float], list[float]]:
        pairs = [(x, v) for x, v, k in zip(xs, values, keep, strict=True) if k]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    axes[0].plot(*cut(_summed([p.series_rate for p in first.pools])), color="grey", lw=0.6)
    axes[0].set_ylabel("arrivals (req/s)")
    for row in rows:
        r = row.result
        colour = _COLOURS.get(row.policy)
        replicas = _summed([[float(v) for v in p.series_replicas] for p in r.pools])
        axes[1].step(*cut(replicas), where="post", color=colour, label=r.policy, lw=1.2)
        axes[2].plot(*cut(_summed([p.series_queue for p in r.pools])), color=colour, lw=0.9)
    axes[1].set_ylabel("replicas (GPUs)")
    axes[1].legend(loc="upper left", fontsize=8)
    axes[2].set_ylabel("queued requests")
    axes[2].set_yscale("symlog", linthresh=10)
    axes[2].set_xlabel(f"time ({unit})")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

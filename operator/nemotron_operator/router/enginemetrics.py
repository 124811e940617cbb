"""Parsing an engine's Prometheus text: the two gauges the balancer uses. Pure; ``pools``
scrapes ``/metrics`` of every endpoint about once a second and feeds the text here.

vLLM labels its gauges per model (``model_name``) and sometimes per engine index; the router
adds the series up (one pod serves one model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["EngineLoad", "parse_engine_metrics"]

_WAITING = "vllm:num_requests_waiting"
# vLLM renamed the KV gauge (gpu_cache_usage_perc -> kv_cache_usage_perc); accept both.
_KV = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


@dataclass(frozen=True, slots=True)
class EngineLoad:
    waiting: float = 0.0
    kv_usage: float = 0.0


def _sample(line: str) -> tuple[str, float] | None:
    if not line or line.startswith("#"):
        return None
    name_end = len(line)
    for index, char in enumerate(line):
        if char in "{ ":
            name_end = index
            break
    name = line[:name_end]
    rest = line[name_end:]
    if rest.startswith("{"):
        close = rest.rfind("}")
        if close < 0:
            return None
        rest = rest[close + 1 :]
    fields = rest.split()
    if not fields:
        return None
    try:
        value = float(fields[0])
    except ValueError:
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return name, value


def parse_engine_metrics(text: str) -> EngineLoad:
    """Waiting requests (summed) and KV-cache use (the largest series, clamped to 0..1)."""
    waiting = 0.0
    kv = 0.0
    for raw in text.splitlines():
        sample = _sample(raw.strip())
        if sample is None:
            continue
        name, value = sample
        if name == _WAITING:
            waiting += max(0.0, value)
        elif name in _KV:
            kv = max(kv, min(1.0, max(0.0, value)))
    return EngineLoad(waiting=waiting, kv_usage=kv)

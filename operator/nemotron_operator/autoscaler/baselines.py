"""The peers our policy is compared with in ``simulator``, configured as their projects ship.

- ``KedaThreshold``: what vLLM production-stack deploys -- a KEDA ScaledObject on
  ``vllm:num_requests_waiting`` with threshold 5 (AverageValue: the HPA wants
  ``ceil(total waiting / 5)`` replicas), min 1, driven by the HPA's default behaviour:
  10% tolerance, sync every 15 s, scale-up at most max(+100%, +4 pods) per 15 s with no
  window, scale-down to the largest recommendation of the last 300 s.
- ``KubeAIAverage``: KubeAI's model autoscaler -- every 10 s, the average number of active
  (in-flight, including queued) requests over a 10 min window divided by ``targetRequests``
  (default 100), rounded up; scale-down only after ``scaleDownDelaySeconds`` (30 s) of
  consecutive lower decisions.
Both read the same ``policy.PoolSignals`` the built-in policy reads; they keep their own
state (these are models of other systems, not product code).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from nemotron_operator.autoscaler.policy import PoolSignals

__all__ = ["KedaThreshold", "KubeAIAverage"]


@dataclass
class KedaThreshold:
    """KEDA ScaledObject (Prometheus trigger, threshold 5) under the HPA's default behaviour."""

    min_replicas: int = 1
    max_replicas: int = 16
    threshold: float = 5.0
    interval_s: float = 15.0
    scale_down_window_s: float = 300.0
    tolerance: float = 0.1
    name: str = "KEDA threshold (waiting > 5)"
    _recs: deque[tuple[float, int]] = field(default_factory=deque)

    def decide(self, *, now: float, signals: PoolSignals, current: int) -> tuple[int, str]:
        waiting = signals.engine_waiting  # KEDA sees the engines only, not the router's queue
        if current > 0 and abs(waiting / (self.threshold * current) - 1.0) <= self.tolerance:
            raw = current
        else:
            raw = math.ceil(waiting / self.threshold)
        raw = max(self.min_replicas, min(self.max_replicas, raw))
        self._recs.append((now, raw))
        while self._recs and now - self._recs[0][0] > self.scale_down_window_s:
            self._recs.popleft()
        if raw > current:
            step_limit = max(2 * current, current + 4)
            return min(raw, step_limit), f"HPA up: waiting {waiting:g}"
        stable = max(r for _, r in self._recs)
        if stable < current:
            return stable, f"HPA down: max over {self.scale_down_window_s:g}s is {stable}"
        return current, "HPA hold"


@dataclass
class KubeAIAverage:
    """KubeAI: 10 min average of in-flight requests against ``targetRequests``."""

    min_replicas: int = 1
    max_replicas: int = 16
    target_requests: float = 100.0
    interval_s: float = 10.0
    window_s: float = 600.0
    scale_down_delay_s: float = 30.0
    name: str = "KubeAI average (in-flight / 100, 10 min)"
    _samples: deque[float] = field(default_factory=deque)
    _down_since: float | None = None

    def decide(self, *, now: float, signals: PoolSignals, current: int) -> tuple[int, str]:
        self._samples.append(signals.demand)
        while len(self._samples) > max(1, round(self.window_s / self.interval_s)):
            self._samples.popleft()
        average = sum(self._samples) / len(self._samples)
        want = max(
            self.min_replicas, min(self.max_replicas, math.ceil(average / self.target_requests))
        )
        if current == 0 and signals.demand > 0:
            want = max(want, 1)
        if want >= current:
            self._down_since = None
            return want, f"average in-flight {average:.1f}"
        if self._down_since is None:
            self._down_since = now
        if now - self._down_since >= self.scale_down_delay_s:
            self._down_since = None
            return want, f"average in-flight {average:.1f} (down after delay)"
        return current, "down pending"

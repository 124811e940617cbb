"""The autoscaling traces A1-A3 of /work/shared/WORKLOADS.md, as arrival rates per pool.

A trace gives, per pool, a request class (mean work and KV footprint from the R2 length
distributions) and an arrival rate over time; ``simulator`` draws seeded Poisson arrivals
from it. Time is compressed so that a run takes seconds: A1/A3's 24 h are one 6 h sinusoid.

Request classes (R2 distributions; means computed exactly):
- reasoning off: prompt U(200, 1000) -> mean 600; output U(50, 300) -> mean 175 tokens.
- reasoning on: prompt U(200, 2000) -> mean 1100; output log-uniform(1000, 8000) -> mean
  (8000 - 1000) / ln 8 = 3366 tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "OFF",
    "ON",
    "TRACES",
    "RequestClass",
    "Trace",
    "a1_diurnal",
    "a2_bursts",
    "a3_reasoning_heavy",
]


@dataclass(frozen=True)
class RequestClass:
    """One kind of request: mean sizes (tokens) and the ranges they are drawn from."""

    name: str
    prompt_tokens: float
    output_tokens: float
    prompt_range: tuple[float, float] = (0.0, 0.0)
    output_range: tuple[float, float] = (0.0, 0.0)
    output_log_uniform: bool = False

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (prompt, output) token counts from the R2 distributions."""
        prompt = rng.uniform(*self.prompt_range, size=n)
        lo, hi = self.output_range
        if self.output_log_uniform:
            output = np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))
        else:
            output = rng.uniform(lo, hi, size=n)
        return prompt, output


OFF = RequestClass(
    "reasoning-off",
    prompt_tokens=600.0,
    output_tokens=175.0,
    prompt_range=(200.0, 1000.0),
    output_range=(50.0, 300.0),
)
ON = RequestClass(
    "reasoning-on",
    prompt_tokens=1100.0,
    output_tokens=7000.0 / math.log(8.0),
    prompt_range=(200.0, 2000.0),
    output_range=(1000.0, 8000.0),
    output_log_uniform=True,
)


@dataclass(frozen=True)
class Trace:
    """Arrival rates (requests/s) per pool over ``duration_s``, and the bursts to time."""

    name: str
    title: str
    duration_s: int
    pools: tuple[tuple[str, RequestClass, Callable[[float], float]], ...]
    bursts: tuple[tuple[float, float], ...] = ()


def _diurnal(trough: float, *, period_s: float) -> Callable[[float], float]:
    """A day as one sinusoid from the trough (t=0) to 5x the trough (t=period/2) and back."""
    peak = 5.0 * trough

    def rate(t: float) -> float:
        return trough + (peak - trough) * (1.0 - math.cos(2.0 * math.pi * t / period_s)) / 2.0

    return rate


def a1_diurnal(*, period_s: int = 6 * 3600, trough: float = 80.0) -> Trace:
    """A1: reasoning-off load, 24 h compressed into one ``period_s`` sinusoid, peak 5x trough."""
    return Trace(
        name="A1",
        title=f"A1 diurnal (24 h as {period_s // 3600} h, {trough:g}-{5 * trough:g} req/s)",
        duration_s=period_s,
        pools=(("off", OFF, _diurnal(trough, period_s=period_s)),),
    )


def a2_bursts(
    *,
    duration_s: int = 4 * 3600,
    base: float = 20.0,
    every_s: int = 1800,
    burst_s: int = 120,
    first_s: int = 900,
) -> Trace:
    """A2: a steady low reasoning-off rate with 10x bursts of 2 min every 30 min."""
    bursts = tuple(
        (float(s), float(s + burst_s)) for s in range(first_s, duration_s - burst_s, every_s)
    )

    def rate(t: float) -> float:
        return base * (10.0 if any(a <= t < b for a, b in bursts) else 1.0)

    return Trace(
        name="A2",
        title=f"A2 bursts ({base:g} req/s, 10x for {burst_s} s every {every_s // 60} min)",
        duration_s=duration_s,
        pools=(("off", OFF, rate),),
        bursts=bursts,
    )


def a3_reasoning_heavy(*, period_s: int = 6 * 3600, trough: float = 4.0) -> Trace:
    """A3: A1's shape with 50% reasoning on (own pool) and the R2 length distributions."""
    half = _diurnal(trough / 2.0, period_s=period_s)
    return Trace(
        name="A3",
        title=f"A3 reasoning-heavy (A1 shape, {trough:g}-{5 * trough:g} req/s, 50% on)",
        duration_s=period_s,
        pools=(("on", ON, half), ("off", OFF, half)),
    )


TRACES: dict[str, Callable[[], Trace]] = {
    "A1": a1_diurnal,
    "A2": a2_bursts,
    "A3": a3_reasoning_heavy,
}

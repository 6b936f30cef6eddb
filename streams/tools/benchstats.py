"""The arithmetic of `vocflow bench`: percentiles, latencies, pacing, memory slopes.

Pure (no I/O, no clock), so the unit tests check it with fixed numbers; the
bench modules measure, this turns the measurements into figures.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds; inf where more than that share of contacts was never seen."""

    p50: float
    p95: float
    p99: float
    max: float
    n: int
    missing: int


def latency_stats(sent: dict[str, float], arrived: dict[str, float]) -> LatencyStats | None:
    """Per contact: sent at `sent[c]` (s), arrived at `arrived[c]` (s; absent: never,
    counted as infinitely late). Arrivals of contacts not sent are ignored."""
    if not sent:
        return None
    values = [(arrived[c] - at) * 1000 if c in arrived else math.inf for c, at in sent.items()]
    return LatencyStats(
        percentile(values, 50),
        percentile(values, 95),
        percentile(values, 99),
        max(values),
        len(values),
        sum(c not in arrived for c in sent),
    )


def due(elapsed_s: float, rate: float) -> int:
    """Records a paced producer must have sent `elapsed_s` after its start (the first
    one at 0 s)."""
    return math.floor(elapsed_s * rate) + 1 if elapsed_s >= 0 else 0


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; nan with fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return math.nan
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def hour_of(consumed: float, marks: Sequence[int]) -> float:
    """The simulated hour a worker has reached when it has consumed `consumed` events.

    marks[h]: events of the simulated day that occurred before hour h (marks[0] = 0,
    non-decreasing), so the hour is interpolated linearly inside the hour it falls in.
    """
    if consumed <= 0 or len(marks) < 2:
        return 0.0
    if consumed >= marks[-1]:
        return float(len(marks) - 1)
    h = bisect.bisect_right(marks, consumed) - 1  # marks[h] <= consumed < marks[h + 1]
    span = marks[h + 1] - marks[h]
    return h + ((consumed - marks[h]) / span if span else 0.0)


@dataclass(frozen=True)
class MemoryDay:
    """RSS over a simulated day, MiB; slope in MiB per simulated hour."""

    start: float
    peak: float
    end: float
    slope_second_half: float
    samples: int


def memory_day(samples: Sequence[tuple[float, float]], hours: float) -> MemoryDay | None:
    """From (simulated hour reached, RSS MiB) samples in time order: the slope over the
    samples of the second half of the day (hour >= hours / 2)."""
    if not samples:
        return None
    second = [(h, rss) for h, rss in samples if h >= hours / 2]
    return MemoryDay(
        start=samples[0][1],
        peak=max(rss for _, rss in samples),
        end=samples[-1][1],
        slope_second_half=slope(second),
        samples=len(samples),
    )

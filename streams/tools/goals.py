"""The performance goals `vocflow bench --check` holds the measured figures to.

A bench run names each figure it measures with a stable key (``e2e.rate``,
``latency.5000.p99_ms``, ...); the goals below compare one figure each with
its limit. The figures are also written, as JSON in an HTML comment, into
docs/benchmarks.md, so ``vocflow bench --check --no-run`` judges the last run
again without measuring anything (and a changed goal can be judged on it).

A goal whose section was not run is "not run" and does not fail the check (a
``--only`` run checks what it measured); a goal whose section ran but whose
figure is missing (the measurement broke, or a latency was never seen) fails.
Pure: no I/O, no clock, so tests assert exact verdicts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

# Where `vocflow bench` writes (the repository's docs/, beside this package's folder).
OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
# The sections of `vocflow bench`, in the order they run.
SECTIONS = (
    "broker",
    "stages",
    "webhook",
    "baseline",
    "end-to-end",
    "latency",
    "freshness",
    "memory-day",
)
MIB_PER_MB = 1e6 / 2**20  # the goals say MB (10^6 bytes); RSS is measured in MiB


@dataclass(frozen=True)
class Goal:
    key: str  # the figure judged
    text: str  # what the issue asks, as a reader knows it
    op: Literal["<=", ">="]
    limit: float
    unit: str
    sections: tuple[str, ...]  # bench sections that must have run to measure it
    fmt: str = ",.0f"

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value <= self.limit if self.op == "<=" else value >= self.limit


def _mb(mb: float) -> float:
    return mb * MIB_PER_MB


GOALS: tuple[Goal, ...] = (
    Goal(
        "workload.text_share",
        "the end-to-end workload: >= 20 % of its events with customer text",
        ">=",
        0.20,
        "share",
        ("end-to-end",),
        ".1%",
    ),
    Goal(
        "e2e.rate",
        "worker end to end >= 10,000 events/s",
        ">=",
        10_000,
        "events/s",
        ("end-to-end",),
    ),
    Goal(
        "ratio.baseline_over_worker",
        "worker within 1.5x of the plain aiokafka loop (baseline rate / worker rate)",
        "<=",
        1.5,
        "x",
        ("end-to-end", "baseline"),
        ".2f",
    ),
    Goal(
        "e2e.cpu_per_1k",
        "worker CPU <= 100 ms per 1,000 events",
        "<=",
        0.100,
        "CPU s",
        ("end-to-end",),
        ".3f",
    ),
    Goal(
        "e2e.peak_rss_mib",
        "peak RSS of the worker that owns embedded ClickHouse <= 700 MB, end to end",
        "<=",
        _mb(700),
        "MiB",
        ("end-to-end",),
    ),
    Goal(
        "day.chdb.peak_rss_mib",
        "peak RSS of the worker that owns embedded ClickHouse <= 700 MB, simulated day",
        "<=",
        _mb(700),
        "MiB",
        ("memory-day",),
    ),
    Goal(
        "day.nosink.peak_rss_mib",
        "peak RSS of a worker without embedded ClickHouse <= 300 MB, simulated day",
        "<=",
        _mb(300),
        "MiB",
        ("memory-day",),
    ),
    Goal(
        "day.chdb.slope_mib_per_h",
        "flat over a simulated day (owns ClickHouse): second-half RSS slope <= 1 MiB/h",
        "<=",
        1.0,
        "MiB/h",
        ("memory-day",),
        ".2f",
    ),
    Goal(
        "day.nosink.slope_mib_per_h",
        "flat over a simulated day (no ClickHouse): second-half RSS slope <= 1 MiB/h",
        "<=",
        1.0,
        "MiB/h",
        ("memory-day",),
        ".2f",
    ),
    Goal(
        "latency.1000.p99_ms",
        "raw -> department topic p99 <= 200 ms at 1,000 events/s offered",
        "<=",
        200,
        "ms",
        ("latency",),
    ),
    Goal(
        "latency.5000.p99_ms",
        "raw -> department topic p99 <= 200 ms at 5,000 events/s offered",
        "<=",
        200,
        "ms",
        ("latency",),
    ),
    Goal(
        "freshness.metrics.p95_s",
        "KPI freshness event -> /metrics p95 <= 1 s (worst freshness run)",
        "<=",
        1.0,
        "s",
        ("freshness",),
        ".2f",
    ),
    Goal(
        "freshness.api.p95_s",
        "KPI freshness event -> /api/kpis p95 <= 1 s (worst freshness run)",
        "<=",
        1.0,
        "s",
        ("freshness",),
        ".2f",
    ),
)


@dataclass(frozen=True)
class Verdict:
    goal: Goal
    measured: float | None
    status: Literal["pass", "fail", "not measured", "not run"]

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "not measured")

    def shown(self) -> str:
        if self.measured is None:
            return "-"
        if math.isinf(self.measured):
            return "not seen"
        return f"{self.measured:{self.goal.fmt}}"


def check(
    figures: dict[str, float], sections: set[str] | frozenset[str], goals: tuple[Goal, ...] = GOALS
) -> list[Verdict]:
    """Each goal against its figure. `sections`: those the run measured."""
    out = []
    for goal in goals:
        value = figures.get(goal.key)
        if not set(goal.sections) <= set(sections):
            out.append(Verdict(goal, value, "not run"))
        elif value is None or math.isnan(value):
            out.append(Verdict(goal, None, "not measured"))
        else:
            out.append(Verdict(goal, value, "pass" if goal.met(value) else "fail"))
    return out


def exit_status(verdicts: list[Verdict]) -> int:
    """1 when a goal that was measured (or should have been) is missed, else 0."""
    return 1 if any(v.failed for v in verdicts) else 0


def _limit(goal: Goal) -> str:
    return f"{goal.op} {goal.limit:{goal.fmt}} {goal.unit}"


def table(verdicts: list[Verdict]) -> list[str]:
    """The markdown table goal | limit | measured | verdict."""
    lines = ["| goal | limit | measured | verdict |", "|---|---:|---:|---|"]
    for v in verdicts:
        lines.append(
            f"| {v.goal.text} | {_limit(v.goal)} | {v.shown()} | "
            f"{v.status.upper() if v.status in ('pass', 'fail') else v.status} |"
        )
    return lines


def summary(verdicts: list[Verdict]) -> str:
    """Plain text lines for the terminal."""
    lines = []
    for v in verdicts:
        lines.append(f"{v.status:>12}  {v.goal.text}: {v.shown()} (goal {_limit(v.goal)})")
    return "\n".join(lines)


_BLOCK = re.compile(r"<!-- vocflow-bench-figures (\{.*?\}) -->", re.S)


def figures_block(figures: dict[str, float], sections: list[str]) -> str:
    """The machine-readable copy of a run's figures (inf, a latency never seen,
    is written as null and read back as inf)."""
    clean = {k: (None if math.isinf(v) else v) for k, v in sorted(figures.items())}
    body = orjson.dumps({"sections": sections, "figures": clean}).decode()
    return f"<!-- vocflow-bench-figures {body} -->"


def read_figures(text: str) -> tuple[dict[str, float], set[str]]:
    """(figures, sections) from a file written by `vocflow bench`. Raises
    ValueError when it holds none (written before the figures were kept)."""
    m = _BLOCK.search(text)
    if m is None:
        raise ValueError(
            "no measured figures in it (written by an older `vocflow bench`?): run "
            "`vocflow bench --check` to measure them"
        )
    data = orjson.loads(m.group(1))
    figures = {k: math.inf if v is None else float(v) for k, v in data["figures"].items()}
    return figures, set(data["sections"])

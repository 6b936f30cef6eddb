"""The arithmetic of the latency and memory sections, on fixed numbers."""

from __future__ import annotations

import math

import pytest

from vocflow.streams.tools.bench import kpis_contacts_today
from vocflow.streams.tools.benchstats import (
    LatencyStats,
    MemoryDay,
    due,
    hour_of,
    latency_stats,
    memory_day,
    percentile,
    slope,
)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_latency_per_contact_in_ms() -> None:
    sent = {f"c{i}": 100.0 + i for i in range(100)}
    arrived = {f"c{i}": 100.0 + i + (i + 1) / 1000 for i in range(100)}  # 1..100 ms
    arrived["stranger"] = 0.0  # not sent in this run: ignored
    assert latency_stats(sent, arrived) == LatencyStats(
        p50=pytest.approx(50.0), p95=pytest.approx(95.0), p99=pytest.approx(99.0),
        max=pytest.approx(100.0), n=100, missing=0,
    )  # fmt: skip


def test_a_contact_never_seen_is_infinitely_late() -> None:
    sent = {f"c{i}": 0.0 for i in range(100)}
    arrived = {f"c{i}": 0.010 for i in range(99)}  # c99 never arrives
    stats = latency_stats(sent, arrived)
    assert stats is not None
    assert stats.p50 == pytest.approx(10.0)
    assert stats.p99 == pytest.approx(10.0)  # 99 of 100 seen
    assert stats.max == math.inf
    assert stats.missing == 1
    del arrived["c98"]
    assert latency_stats(sent, arrived).p99 == math.inf  # type: ignore[union-attr]


def test_no_contact_sent_no_stats() -> None:
    assert latency_stats({}, {"c": 1.0}) is None


def test_due_paces_from_the_first_record() -> None:
    assert [due(t, 1000.0) for t in (-0.1, 0.0, 0.0005, 0.001, 0.0105, 1.0)] == [
        0, 1, 1, 2, 11, 1001,
    ]  # fmt: skip
    assert due(2.5, 2.0) == 6


def test_slope_is_least_squares() -> None:
    assert slope([(0.0, 100.0), (1.0, 102.0), (2.0, 104.0)]) == pytest.approx(2.0)
    assert slope([(12.0, 300.0), (18.0, 300.0), (24.0, 300.0)]) == 0.0
    assert slope([(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 4.0)]) == pytest.approx(0.8)
    assert math.isnan(slope([(1.0, 5.0)]))
    assert math.isnan(slope([(1.0, 5.0), (1.0, 6.0)]))


def test_hour_of_interpolates_inside_the_hour() -> None:
    marks = [0, 100, 100, 400]  # 100 events in hour 0, none in hour 1, 300 in hour 2
    assert hour_of(0, marks) == 0.0
    assert hour_of(50, marks) == 0.5
    assert hour_of(100, marks) == 2.0  # the empty hour is passed at once
    assert hour_of(250, marks) == 2.5
    assert hour_of(400, marks) == 3.0
    assert hour_of(999, marks) == 3.0
    assert hour_of(5, [0]) == 0.0


def test_memory_day_slope_over_the_second_half_only() -> None:
    # Growing fast in the first half (start-up, caches), flat then growing 2 MiB/h.
    samples = [(0.0, 100.0), (6.0, 250.0), (11.9, 300.0), (12.0, 300.0), (18.0, 312.0),
               (24.0, 324.0)]  # fmt: skip
    assert memory_day(samples, 24.0) == MemoryDay(
        start=100.0, peak=324.0, end=324.0, slope_second_half=pytest.approx(2.0), samples=6
    )
    assert memory_day([], 24.0) is None


def test_contacts_today_from_an_api_kpis_document() -> None:
    body = (
        b'{"intervals": {"today": {"by": {"queue": {"contacts": {"_all": {"value": 41.0, '
        b'"numerator": 41, "denominator": 1}, "billing": {"value": 9.0}}}}}}}'
    )
    assert kpis_contacts_today(body) == 41.0
    assert kpis_contacts_today(b'{"error": "not ready"}') is None
    assert kpis_contacts_today(b"not json") is None
    empty = b'{"intervals": {"today": {"by": {"queue": {"contacts": {"_all": {"value": null}}}}}}}'
    assert kpis_contacts_today(empty) is None


def test_hour_marks_count_the_contact_events_of_each_simulated_hour() -> None:
    from itertools import pairwise

    from vocflow.streams.tools.bench import _hour_marks
    from vocflow.streams.tools.simulator import SimConfig, simulate

    config = SimConfig(seed=3, contacts_per_day=600, duration_hours=3.0, start_hour=9.0)
    contacts = [r for r in simulate(config) if r.kind == "contact"]
    marks = _hour_marks(config)
    assert len(marks) == 4
    assert marks[0] == 0
    assert marks[-1] == len(contacts)  # late lifecycle events count in the last hour
    first_hour = sum((r.at - config.start).total_seconds() < 3600 for r in contacts)
    assert marks[1] == first_hour
    assert all(a <= b for a, b in pairwise(marks))

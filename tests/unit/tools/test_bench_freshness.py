"""The pure part of the freshness bench: reading /metrics, matching batches to polls."""

from __future__ import annotations

import math

import pytest

from vocflow.streams.tools.bench import (
    FRESHNESS_SERIES,
    Spread,
    first_visible,
    percentile,
    scrape_values,
    spread,
)

pytestmark = pytest.mark.clock

EXPOSITION = """\
# HELP vocflow_stage_events_in_total Events a pipeline stage consumed.
# TYPE vocflow_stage_events_in_total counter
vocflow_stage_events_in_total{stage="normalize"} 120.0
vocflow_stage_events_in_total{stage="facts"} 130.0
# TYPE vocflow_stage_events_out_total counter
vocflow_stage_events_out_total{stage="normalize",topic="contacts.events"} 118.0
vocflow_stage_events_out_total{stage="normalize",topic="contacts.voc"} 30.0
vocflow_stage_events_in_total{stage="route"} 40.0
# TYPE vocflow_sink_rows_total counter
vocflow_sink_rows_total{table="contact_events"} 100.0
vocflow_sink_rows_total{table="contact_facts"} 77.0
# TYPE vocflow_contacts gauge
vocflow_contacts{channel="",department="",interval="today",queue=""} 41.0
vocflow_contacts{channel="chat",department="",interval="today",queue=""} 9.0
vocflow_contacts{channel="",department="",interval="15m",queue=""} 41.0
vocflow_contacts_created 1.7e9
# TYPE vocflow_kpi_refreshed_timestamp_seconds gauge
vocflow_kpi_refreshed_timestamp_seconds 1.7638875125e+09
"""


def test_scrape_values_reads_exact_label_sets_only() -> None:
    assert scrape_values(EXPOSITION) == {
        "normalize": 120.0,
        "normalized": 118.0,
        "facts": 130.0,
        "clickhouse": 100.0,
        "kpi": 41.0,
        "refreshed": 1763887512.5,
    }


def test_scrape_values_leaves_out_absent_series() -> None:
    # publish_gauges clears the KPI gauges before setting them: a scrape in between
    # has no vocflow_contacts line at all.
    text = 'vocflow_stage_events_in_total{stage="normalize"} 3.0\n'
    assert scrape_values(text) == {"normalize": 3.0}
    assert set(FRESHNESS_SERIES) == {
        "normalize",
        "normalized",
        "facts",
        "clickhouse",
        "kpi",
        "refreshed",
    }


def test_first_visible_is_the_first_poll_at_or_after_the_mark_reaching_its_target() -> None:
    # Binary fractions, so the differences are exact.
    marks = [(10.0, 5.0), (10.25, 8.0), (10.5, 8.0), (10.75, 8.0), (11.0, 12.0), (11.5, 99.0)]
    polls = [
        (9.75, 5.0),  # before the first mark: does not count although it shows 5
        (10.125, 4.0),
        (10.5, 0.0),  # gauge cleared mid-refresh
        (10.75, 8.0),
        (12.0, 11.0),
        (15.5, 12.0),
    ]
    assert first_visible(marks, polls) == [0.75, 0.5, 0.25, 0.0, 4.5, None]


def test_first_visible_with_no_polls() -> None:
    assert first_visible([(1.0, 1.0)], []) == [None]
    assert first_visible([], [(1.0, 1.0)]) == []


def test_percentile_nearest_rank() -> None:
    values = [float(x) for x in range(20, 0, -1)]  # 20 .. 1, unsorted on purpose
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile(values, 100) == 20.0
    assert percentile(values, 0) == 1.0
    assert percentile([0.7], 95) == 0.7
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_spread_counts_a_batch_never_seen_as_infinitely_late() -> None:
    assert spread([0.5, 0.25, 2.0, 1.0]) == Spread(p50=0.5, p95=2.0, max=2.0, n=4, missing=0)
    # sorted: 0.25 0.5 1.0 2.0 inf inf -> p50 = 3rd, p95 = 6th
    assert spread([0.5, None, 0.25, 2.0, 1.0, None]) == Spread(
        p50=1.0, p95=math.inf, max=math.inf, n=6, missing=2
    )
    assert spread([None]) == Spread(math.inf, math.inf, math.inf, 1, 1)
    assert spread([]) is None

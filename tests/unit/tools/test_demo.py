"""`vocflow demo`'s simulated day and closing summary, without a broker."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vocflow.streams.tools.demo import demo_day, summary
from vocflow.streams.tools.simulator import scenario_windows, simulate

pytestmark = pytest.mark.clock

# 00:30 in Shanghai is 16:30 UTC the day before: a machine-zone "today" would be wrong.
NOW = datetime(2026, 12, 5, 16, 30, 7, 250_000, tzinfo=UTC)


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/New_York"])
def test_the_demo_day_is_stamped_from_now_in_the_kpi_time_zone(tz: str) -> None:
    day = demo_day(seed=1, tz=tz, now=NOW)
    assert day.tz == tz
    assert day.start == NOW  # its simulated 08:00 is now
    assert day.start_date == NOW.astimezone(ZoneInfo(tz)).date()
    assert day.id_prefix == f"demo{NOW.astimezone(ZoneInfo(tz)):%y%m%d%H%M%S}"
    first = next(r for r in simulate(day) if r.kind == "contact")
    assert NOW <= first.at < NOW + timedelta(minutes=1)
    assert first.value["event_id"].startswith(f"{day.id_prefix}-")
    (outage,) = scenario_windows(day)
    assert outage.start == NOW + timedelta(minutes=30)  # scenarios move with the stamp


def test_a_full_run_says_nothing_was_lost() -> None:
    counts = Counter(contact=1000, malformed=12, agent=400)
    routed = {"routing_log": 230}
    lines, lost = summary(counts, seen=1012, ok=1000, dlq=12, rows=routed, stored=1000)
    assert not lost
    assert lines == [
        "demo summary: produced=1012 (1000 valid + 12 deliberately broken) processed=1012 "
        "valid=1000 dlq=12 routing_log rows (all runs)=230",
        "  produced = valid + dead-lettered: 1012 = 1000 + 12",
        "  ClickHouse holds 1000 of this run's 1000 valid events (distinct event ids)",
        "  nothing lost",
    ]


def test_a_missing_event_is_reported_as_lost() -> None:
    counts = Counter(contact=1000, malformed=12)
    lines, lost = summary(counts, seen=1012, ok=1000, dlq=12, rows={}, stored=997)
    assert lost
    assert lines[-1] == "  LOST: 3 valid events are not in ClickHouse; see the worker log"


def test_an_earlier_runs_backlog_is_named_not_mixed_in() -> None:
    counts = Counter(contact=100, malformed=0)
    lines, lost = summary(counts, seen=150, ok=150, dlq=0, rows={}, stored=100)
    assert not lost
    assert lines[1] == (
        "  produced = valid + dead-lettered: 100 != 150 + 0 "
        "(the worker also processed 50 records of earlier runs: a backlog, or redelivered "
        "after the last shutdown; at-least-once, duplicates collapse by id)"
    )

"""`SimConfig.time_shift` moves a run in event time and changes nothing else.

The end-to-end alerting test stamps a fixed simulated morning around the real
"now", so that its load (and whether any queue dips below target) does not
depend on the wall-clock time the test runs at.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vocflow.streams.tools.simulator import (
    Outage,
    SimConfig,
    SimRecord,
    StaffingShortfall,
    scenario_windows,
    simulate,
)

pytestmark = pytest.mark.clock

SHIFT = timedelta(days=3, hours=-7, minutes=13, seconds=5)
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")
_TIMESPEC = {0: "seconds", 3: "milliseconds", 6: "microseconds"}


def _config() -> SimConfig:
    return SimConfig(
        seed=9,
        start_date=date(2026, 11, 23),
        start_hour=9.5,
        duration_hours=1.0,
        contacts_per_day=6_000,
        customers=800,
        outages=(Outage(city="杭州", start_hour=9.75, duration_minutes=20, intensity=6),),
        shortfalls=(StaffingShortfall(queue="voice.billing", start_hour=9.6, intensity=0.5),),
    )


def _json(record: SimRecord) -> str:
    return json.dumps(
        [record.kind, record.key, record.value, record.labels], ensure_ascii=False, sort_keys=True
    )


def _moved(record: SimRecord) -> str:
    """The record as JSON with every timestamp in it (key and value, any format the
    record uses) moved by SHIFT."""

    def move(m: re.Match[str]) -> str:
        at = datetime.fromisoformat(m[0]) + SHIFT
        return at.isoformat(timespec=_TIMESPEC[len(m[1] or ".") - 1])

    return _ISO.sub(move, _json(record))


def test_default_is_no_shift() -> None:
    config = _config()
    assert config.time_shift == timedelta(0)
    assert config.start == datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_shift_moves_every_timestamp_and_nothing_else() -> None:
    plain = _config()
    shifted = replace(plain, time_shift=SHIFT)
    assert shifted.start == plain.start + SHIFT and shifted.end == plain.end + SHIFT
    assert shifted.midnight == plain.midnight  # the simulated day itself is unchanged

    a = list(simulate(plain))
    b = list(simulate(shifted))
    assert len(a) == len(b) > 1_000
    assert {r.kind for r in a} >= {"profile", "contact", "agent"}
    for x, y in zip(a, b, strict=True):
        assert y.at == x.at + SHIFT
        assert _json(y) == _moved(x)
        if "occurred_at" in y.value:
            assert y.value["occurred_at"] == y.at.isoformat(timespec="milliseconds")
    assert b[-1].at.utcoffset() == timedelta(hours=8)
    assert sum(_json(x) != _json(y) for x, y in zip(a, b, strict=True)) > 1_000


def test_scenario_windows_move_with_the_events() -> None:
    plain = _config()
    shifted = replace(plain, time_shift=SHIFT)
    moved = [replace(w, start=w.start + SHIFT, end=w.end + SHIFT) for w in scenario_windows(plain)]
    assert scenario_windows(shifted) == moved
    outage = next(w for w in scenario_windows(shifted) if w.kind == "outage")
    burst = [
        r
        for r in simulate(shifted)
        if r.kind == "contact"
        and r.value["event_type"] in ("offered", "received")
        and (r.labels or {}).get("scenario") == "outage"
        and not (r.labels or {}).get("repeat")  # repeats and redials come later
    ]
    assert burst and all(outage.start <= r.at < outage.end for r in burst)

"""`vocflow simulate` options that shape the run, and `vocflow shifts load` file
checks: both before any Kafka work."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from vocflow.streams.cli import build_parser, main
from vocflow.streams.cli.data import simulate_config
from vocflow.streams.tools.simulator import scenario_windows, simulate

pytestmark = pytest.mark.clock


def test_a_bad_date_is_a_usage_error_naming_the_option(capsys: pytest.CaptureFixture) -> None:
    codes: list[int] = []
    main(["simulate", "--date", "2026-13-01"], exit=codes.append)
    assert codes == [2]
    assert capsys.readouterr().err.strip() == (
        "vocflow: error: --date 2026-13-01: month must be in 1..12 (expected YYYY-MM-DD)"
    )


# 00:30 in Shanghai is 16:30 UTC the day before (and 11:30 the day before in New York).
NOW = datetime(2026, 12, 5, 16, 30, tzinfo=UTC)


def options(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["simulate", *argv])


@pytest.mark.parametrize("process_tz", ["UTC", "America/New_York"])
def test_the_default_day_is_today_in_the_kpi_time_zone(
    process_tz: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", process_tz)
    time.tzset()
    try:
        config = simulate_config(options(), "Asia/Shanghai", NOW)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (config.start_date, config.tz) == (date(2026, 12, 6), "Asia/Shanghai")
    assert config.start == datetime(2026, 12, 6, tzinfo=ZoneInfo("Asia/Shanghai"))
    other = simulate_config(options(), "America/New_York", NOW)
    assert (other.start_date, other.tz) == (date(2026, 12, 5), "America/New_York")


def test_from_now_stamps_the_simulated_start_hour_at_now() -> None:
    config = simulate_config(
        options("--start-hour", "9", "--hours", "2", "--outage", "杭州@09:30+20", "--from-now"),
        "Asia/Shanghai",
        NOW,
    )
    assert config.start == NOW  # the simulated 09:00 happens now
    assert config.start_hour == 9.0  # the load curves still see a morning
    (outage,) = scenario_windows(config)
    assert outage.start == NOW + timedelta(minutes=30)
    first = next(r for r in simulate(config) if r.kind == "contact")
    assert NOW <= first.at < NOW + timedelta(minutes=2)


def test_shifts_load_refuses_a_bad_file_before_touching_kafka(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unreachable bootstrap: validation must fail first, with the line.
    monkeypatch.setenv("VOCFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    path = tmp_path / "s.csv"
    path.write_text("agent_id,start,end\na1,2026-11-23 10:00,2026-11-23 09:00\n", "utf-8")
    codes: list[int] = []
    main(["shifts", "load", str(path)], exit=codes.append)
    assert codes == [2]
    err = capsys.readouterr().err
    assert f"{path}:2: end must be after start" in err
    assert "nothing was published" in err


def test_shifts_help_explains_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["shifts", "load", "--help"])
    out = capsys.readouterr().out
    assert "agent_id,team,start,end,activity" in out
    assert "a1001,billing,2026-11-23 09:00,2026-11-23 12:00,work" in out
    assert "Asia/Shanghai" in out

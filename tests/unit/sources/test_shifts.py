"""Schedule files: parsing, validation with file:line errors, keys, the sink row."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from vocflow.schemas import ShiftRecord
from vocflow.sinks.clickhouse.tables import AGENT_SHIFTS
from vocflow.streams.sources.shifts import ShiftFileError, read_shifts, shift_key

pytestmark = pytest.mark.clock

TZ = "Asia/Shanghai"
CST = timezone(timedelta(hours=8))
LOADED_AT = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)

GOOD_CSV = """agent_id,team,start,end,activity
a1,t1,2026-11-23 09:00,2026-11-23 12:00,work
a1,t1,2026-11-23 12:00,2026-11-23 12:30,lunch

a1,t1,2026-11-23T12:30:00+08:00,2026-11-23T18:00:00+08:00,
a2,,2026-11-23 09:00,2026-11-23 17:00,work
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(*paths: Path) -> list[str]:
    with pytest.raises(ShiftFileError) as info:
        read_shifts(list(paths), TZ, LOADED_AT)
    assert "nothing was published" in str(info.value)
    return info.value.problems


def test_csv_naive_times_are_local_and_defaults_apply(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", GOOD_CSV)
    loaded = read_shifts([path], TZ, LOADED_AT)
    assert [item.where for item in loaded] == [f"{path}:{n}" for n in (2, 3, 5, 6)]
    first, lunch, afternoon, other = (item.record for item in loaded)
    assert first.start == datetime(2026, 11, 23, 9, tzinfo=CST)
    assert first.start.astimezone(UTC) == datetime(2026, 11, 23, 1, tzinfo=UTC)
    assert lunch.activity == "lunch" and afternoon.activity == "work"
    assert afternoon.end == datetime(2026, 11, 23, 18, tzinfo=CST)
    assert other.team is None and other.agent_id == "a2"
    assert {item.record.published_at for item in loaded} == {LOADED_AT}


def test_jsonl_and_gzip(tmp_path: Path) -> None:
    text = (
        '{"agent_id": "a1", "start": "2026-11-23T01:00:00Z", "end": "2026-11-23T02:00:00Z"}\n'
        "\n"
        '{"agent_id": "a1", "start": "2026-11-23 10:00", "end": "2026-11-23 10:15", '
        '"activity": "break", "team": "t1"}\n'
    )
    path = tmp_path / "s.jsonl.gz"
    path.write_bytes(gzip.compress(text.encode()))
    a, b = (item.record for item in read_shifts([path], TZ, LOADED_AT))
    assert (a.start, a.end) == (
        datetime(2026, 11, 23, 9, tzinfo=CST),
        datetime(2026, 11, 23, 10, tzinfo=CST),
    )
    assert (b.start, b.activity, b.team) == (datetime(2026, 11, 23, 10, tzinfo=CST), "break", "t1")


def test_every_bad_row_is_reported_with_file_and_line(tmp_path: Path) -> None:
    csv_path = write(
        tmp_path,
        "bad.csv",
        "agent_id,team,start,end,activity\n"
        "a1,t1,2026-11-23 09:00,2026-11-23 08:00,work\n"  # 2: end before start
        "a1,t1,yesterday,2026-11-23 08:00,work\n"  # 3: not a time
        "has space,t1,2026-11-23 09:00,2026-11-23 10:00,work\n"  # 4: bad id
        "a2,t1,2026-11-23 09:00,2026-11-23 10:00,work,extra\n"  # 5: extra cell
        "a3,t1,2026-11-23 09:00,2026-11-25 10:00,work\n"  # 6: two days
        "a4,t1,2026-11-23 09:00,,work\n",  # 7: no end
    )
    jsonl_path = write(
        tmp_path,
        "bad.jsonl",
        '{"agent_id": "a5", "start": "2026-11-23 09:00", "end": "2026-11-23 10:00"}\n'
        "{not json\n"
        '["a list"]\n'
        '{"agent_id": "a5", "start": "2026-11-23 09:00", "end": "2026-11-23 10:00", '
        '"published_at": "2026-11-23T00:00:00Z"}\n',
    )
    found = problems(csv_path, jsonl_path)
    assert [p.split(": ", 1)[0] for p in found] == [
        f"{csv_path}:2",
        f"{csv_path}:3",
        f"{csv_path}:4",
        f"{csv_path}:5",
        f"{csv_path}:6",
        f"{csv_path}:7",
        f"{jsonl_path}:2",
        f"{jsonl_path}:3",
        f"{jsonl_path}:4",
    ]
    assert found[0] == f"{csv_path}:2: end must be after start"
    assert found[1].startswith(f"{csv_path}:3: start: Input should be a valid datetime")
    assert found[2].startswith(f"{csv_path}:4: agent_id: String should match pattern")
    assert found[3] == f"{csv_path}:5: more cells than header columns"
    assert "longer than 24 hours" in found[4]
    assert found[5] == f"{csv_path}:7: end: Field required"
    assert found[6].startswith(f"{jsonl_path}:2: bad_json:")
    assert found[7].startswith(f"{jsonl_path}:3: not_an_object:")
    assert found[8] == f"{jsonl_path}:4: unknown field(s) published_at"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "empty file (no header line)"),
        (
            "agent,start,end",
            "unknown column(s) agent; missing column(s) agent_id; the columns are "
            "agent_id, team, start, end, activity",
        ),
        ("agent_id,start,end,end", "duplicated column(s) end; the columns are"),
    ],
)
def test_bad_csv_header_is_line_1(tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path, "h.csv", header + "\na1,2026-11-23 09:00,2026-11-23 10:00\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:1: {message}")


def test_overlapping_segments_of_one_agent_are_refused(tmp_path: Path) -> None:
    one = write(
        tmp_path,
        "one.csv",
        "agent_id,start,end,activity\n"
        "a1,2026-11-23 09:00,2026-11-23 12:00,work\n"
        "a2,2026-11-23 09:00,2026-11-23 12:00,work\n"
        "a1,2026-11-23 12:00,2026-11-23 12:30,lunch\n",
    )
    two = write(
        tmp_path,
        "two.csv",
        "agent_id,start,end,activity\na1,2026-11-23 11:00,2026-11-23 11:30,meeting\n",
    )
    assert problems(one, two) == [
        f"{two}:2: agent a1: segment from 2026-11-23T11:00:00+08:00 overlaps the segment of "
        f"{one}:2 (until 2026-11-23T12:00:00+08:00)"
    ]


def test_unreadable_files(tmp_path: Path) -> None:
    latin = tmp_path / "s.csv"
    latin.write_bytes("agent_id,start,end\nä,1,2\n".encode("latin-1"))
    odd = write(tmp_path, "s.xlsx", "")
    missing = tmp_path / "missing.csv"
    found = problems(latin, odd, missing)
    assert found[0].startswith(f"{latin}: not UTF-8 text")
    assert found[1].startswith(f"{odd}: unknown format")
    assert found[2].startswith(f"{missing}: cannot read")


def test_naive_times_need_a_zone_outside_the_loader() -> None:
    data = {
        "agent_id": "a1",
        "start": "2026-11-23T09:00:00",
        "end": "2026-11-23T10:00:00",
        "published_at": LOADED_AT,
    }
    with pytest.raises(ValidationError, match="timezone"):
        ShiftRecord.model_validate(data)
    record = ShiftRecord.model_validate(data, context={"timezone": "UTC"})
    assert record.start == datetime(2026, 11, 23, 9, tzinfo=UTC)


def test_key_is_agent_and_utc_start_whatever_the_offset() -> None:
    base = {"agent_id": "a1", "published_at": LOADED_AT}
    local = ShiftRecord(
        **base,
        start=datetime(2026, 11, 23, 9, tzinfo=CST),
        end=datetime(2026, 11, 23, 10, tzinfo=CST),
    )
    utc = ShiftRecord(
        **base,
        start=datetime(2026, 11, 23, 1, tzinfo=UTC),
        end=datetime(2026, 11, 23, 3, tzinfo=UTC),
    )
    assert shift_key(local) == shift_key(utc) == b"a1|2026-11-23T01:00:00.000+00:00"


def test_sink_row() -> None:
    record = ShiftRecord(
        agent_id="a1",
        team="t1",
        start=datetime(2026, 11, 23, 9, tzinfo=CST),
        end=datetime(2026, 11, 23, 10, tzinfo=CST),
        activity="break",
        published_at=LOADED_AT,
    )
    row = AGENT_SHIFTS.to_row(record.model_dump_json().encode(), 3, 17)
    assert dict(zip(AGENT_SHIFTS.columns, row, strict=True)) == {
        "agent_id": "a1",
        "team": "t1",
        "start": record.start,
        "end": record.end,
        "activity": "break",
        "published_at": LOADED_AT,
        "kafka_partition": 3,
        "kafka_offset": 17,
    }
    with pytest.raises(ValueError, match="not a ShiftRecord"):
        AGENT_SHIFTS.to_row(b'{"agent_id": "a1"}', 0, 0)

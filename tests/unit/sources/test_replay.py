"""Replay: file parsing (JSONL, CSV, .gz), checkpoints, resume without duplicates, pacing."""

from __future__ import annotations

import gzip
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from vocflow.schemas import ContactEvent
from vocflow.streams.sources.publisher import validate_event
from vocflow.streams.sources.replay import (
    HEADER_KEY,
    HEADER_LINE,
    Checkpoint,
    DataFile,
    Interrupted,
    Pacer,
    Replayer,
    ReplayError,
    checkpoint_key,
    data_format,
    load_checkpoint,
    parse_csv,
    parse_jsonl,
    resume_point,
    to_event,
)

pytestmark = pytest.mark.clock


def event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i}",
        "contact_id": f"C-{i % 7}",
        "channel": "phone",
        "event_type": "offered",
        "occurred_at": f"2024-05-06T09:{i // 60 % 60:02d}:{i % 60:02d}+08:00",
        **extra,
    }


def jsonl(events: list[dict[str, Any] | str]) -> str:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)


# ---- parsing


def test_data_format_is_told_by_the_name_through_gz() -> None:
    assert data_format(Path("a.jsonl")) == "jsonl"
    assert data_format(Path("a.NDJSON.gz")) == "jsonl"
    assert data_format(Path("day.csv.gz")) == "csv"
    with pytest.raises(ReplayError, match="unknown format"):
        data_format(Path("a.xlsx"))


def test_jsonl_lines_keep_their_numbers_and_report_bad_ones() -> None:
    text = jsonl([event(1), "", "{not json", "[1]", event(2)])
    lines = list(parse_jsonl(io.StringIO(text)))
    assert [line.number for line in lines] == [1, 3, 4, 5]
    assert lines[0].data == event(1)
    assert lines[1].error is not None and lines[1].error.startswith("bad_json")
    assert lines[2].error is not None and lines[2].error.startswith("not_an_object")


def test_csv_columns_are_event_fields_and_payload_dot_fields() -> None:
    text = (
        "event_id,contact_id,channel,event_type,occurred_at,queue,payload.wait_seconds,text\n"
        "e1,C1,phone,answered,2024-05-06T09:15:42+08:00,billing,39,\n"
        'e2,C2,chat,message,2024-05-06T09:16:00+08:00,,,"two\nlines, with comma"\n'
    )
    lines = list(parse_csv(io.StringIO(text)))
    assert [line.number for line in lines] == [2, 4]  # a record's last physical line
    first, second = (validate_event(line.data or {}) for line in lines)
    assert first.payload is not None and first.payload.wait_seconds == 39.0
    assert first.queue == "billing" and first.text is None
    assert second.text == "two\nlines, with comma" and second.payload is None


def test_csv_with_an_unknown_column_is_refused_with_the_column_names() -> None:
    with pytest.raises(ReplayError, match=r"x\.csv:1: unknown CSV column\(s\) 'wait'"):
        list(parse_csv(io.StringIO("event_id,wait\n1,2\n"), "x.csv"))
    with pytest.raises(ReplayError, match=r"payload\.colour"):
        list(parse_csv(io.StringIO("event_id,payload.colour\n1,2\n"), "x.csv"))


def test_csv_row_with_too_many_cells_is_one_invalid_line() -> None:
    lines = list(parse_csv(io.StringIO("event_id,contact_id\na,b,c\n")))
    assert lines[0].error == "bad_format: more cells than header columns"


def test_invalid_events_get_a_reason_without_their_values() -> None:
    bad = event(1, event_type="answered", customer_id="secret customer 13800138000")
    lines = list(parse_jsonl(io.StringIO(jsonl([bad]))))
    ev, error = to_event(lines[0])
    assert ev is None and error is not None
    assert error.startswith("invalid: ")
    assert "13800138000" not in error


def test_gz_files_read_like_plain_ones(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_text(jsonl([event(1), event(2)]))
    packed = tmp_path / "a.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    csv_gz = tmp_path / "b.csv.gz"
    csv_gz.write_bytes(
        gzip.compress(
            b"\xef\xbb\xbfevent_id,contact_id,channel,event_type,occurred_at\n"
            b"e1,C1,sms,received,2024-05-06T09:15:42+08:00\n"
        )
    )
    for path, n in ((plain, 2), (packed, 2), (csv_gz, 1)):
        data = DataFile(path)
        try:
            lines = list(data.lines())
        finally:
            data.close()
        assert len(lines) == n
        assert all(to_event(line)[0] is not None for line in lines)


# ---- checkpoints


def test_checkpoint_round_trips_and_is_keyed_by_file_topic_and_cluster(tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text("{}\n")
    st = data.stat()
    cp = Checkpoint(str(data), st.st_size, st.st_mtime_ns, "contacts.raw", "h:1", line=7)
    cp.offsets = {0: 5, 3: 9}
    cp.save(tmp_path / "cp")
    loaded = load_checkpoint(tmp_path / "cp", data, "contacts.raw", "h:1")
    assert loaded == cp
    assert load_checkpoint(tmp_path / "cp", data, "other.raw", "h:1") is None
    assert load_checkpoint(tmp_path / "cp", data, "contacts.raw", "h:2") is None
    assert not list((tmp_path / "cp").glob("*.tmp"))
    assert resume_point(loaded, data) == cp


def test_a_changed_file_is_not_resumed_at_a_stale_line(tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text("{}\n")
    st = data.stat()
    cp = Checkpoint(str(data), st.st_size, st.st_mtime_ns, "t", "h:1", line=1)
    data.write_text("{}\n{}\n")
    with pytest.raises(ReplayError, match=r"changed since its checkpoint.*--restart"):
        resume_point(cp, data)
    os.utime(data, ns=(st.st_mtime_ns, st.st_mtime_ns + 10**9))
    data.write_text("{}\n")  # same size, other mtime
    with pytest.raises(ReplayError, match="changed"):
        resume_point(cp, data)


def test_an_unreadable_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text("{}\n")
    (tmp_path / f"{checkpoint_key(data, 't', 'h:1')}.json").write_text("{garbage")
    with pytest.raises(ReplayError, match=r"unreadable checkpoint.*--restart"):
        load_checkpoint(tmp_path, data, "t", "h:1")


# ---- replay against a fake Kafka log


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, no checkpoint is written."""


class FakeFuture:
    def get(self, timeout: float | None = None) -> None:
        return None


class FakePublisher:
    """Appends to an in-memory log as Kafka would (acked at once); can crash after N sends."""

    topic = "t.contacts.raw"

    def __init__(self, log: list[tuple[ContactEvent, dict[str, bytes]]]) -> None:
        self.log = log
        self.crash_after: int | None = None
        self.flushes = 0

    def send(self, event: ContactEvent, headers: list[tuple[str, bytes]]) -> FakeFuture:
        if self.crash_after is not None and self.crash_after <= 0:
            raise Crash
        if self.crash_after is not None:
            self.crash_after -= 1
        self.log.append((event, dict(headers)))
        return FakeFuture()

    def flush(self) -> None:
        self.flushes += 1


class FakeKafkaReplayer(Replayer):
    """A Replayer whose Kafka reads come from the fake log (one partition)."""

    def end_offsets(self) -> dict[int, int]:
        return {0: len(self.publisher.log)}  # type: ignore[attr-defined]

    def lines_in_kafka_since(self, key: str, offsets: dict[int, int]) -> set[int]:
        return {
            int(headers[HEADER_LINE])
            for _, headers in self.publisher.log[offsets.get(0, 0) :]  # type: ignore[attr-defined]
            if headers[HEADER_KEY] == key.encode()
        }


def replayer(pub: FakePublisher, cp_dir: Path, **kwargs: Any) -> FakeKafkaReplayer:
    return FakeKafkaReplayer(pub, "h:1", cp_dir, progress=False, report=io.StringIO(), **kwargs)  # type: ignore[arg-type]


def lines_in_log(log: list[tuple[ContactEvent, dict[str, bytes]]]) -> list[int]:
    return [int(h[HEADER_LINE]) for _, h in log]


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    rows: list[dict[str, Any] | str] = [event(i) for i in range(1, 31)]
    rows[9] = "{broken"  # line 10
    rows[19] = json.dumps(event(20, channel="fax"))  # line 20
    path = tmp_path / "day.jsonl"
    path.write_text(jsonl(rows))
    return path


def test_a_full_replay_sends_every_valid_line_once_and_reports_invalid_ones(
    tmp_path: Path, data_file: Path
) -> None:
    log: list[tuple[ContactEvent, dict[str, bytes]]] = []
    r = replayer(FakePublisher(log), tmp_path / "cp")
    summary = r.replay([data_file])
    assert lines_in_log(log) == [n for n in range(1, 31) if n not in (10, 20)]
    assert (summary.events, summary.invalid) == (28, 2)
    assert dict(summary.invalid_by_reason) == {"bad_json": 1, "invalid": 1}
    report = r.report.getvalue()  # type: ignore[attr-defined]
    assert f"{data_file}:10: bad_json" in report
    assert f"{data_file}:20: invalid: channel:" in report
    assert orjson.loads(orjson.dumps(log[0][0].model_dump(mode="json")))["event_id"] == "ev-1"
    # Finished: a second run sends nothing.
    again = replayer(FakePublisher(log), tmp_path / "cp").replay([data_file])
    assert again.events == 0 and again.files_already_done == 1
    assert len(log) == 28
    # --restart sends it all again, on purpose.
    replayer(FakePublisher(log), tmp_path / "cp", restart=True).replay([data_file])
    assert len(log) == 56


def test_max_events_stops_and_the_next_run_continues_without_duplicates(
    tmp_path: Path, data_file: Path
) -> None:
    log: list[tuple[ContactEvent, dict[str, bytes]]] = []
    first = replayer(FakePublisher(log), tmp_path / "cp", max_events=12).replay([data_file])
    assert first.stopped_early and first.events == 12
    second = replayer(FakePublisher(log), tmp_path / "cp").replay([data_file])
    assert second.events == 16
    assert sorted(lines_in_log(log)) == [n for n in range(1, 31) if n not in (10, 20)]


def test_a_crash_after_acks_but_before_the_checkpoint_is_resumed_from_the_log(
    tmp_path: Path, data_file: Path
) -> None:
    log: list[tuple[ContactEvent, dict[str, bytes]]] = []
    pub = FakePublisher(log)
    pub.crash_after = 17  # acked by "Kafka", checkpoint still at line 0
    with pytest.raises(Crash):
        replayer(pub, tmp_path / "cp").replay([data_file])
    assert len(log) == 17
    summary = replayer(FakePublisher(log), tmp_path / "cp").replay([data_file])
    assert summary.already_in_kafka == 17
    assert sorted(lines_in_log(log)) == [n for n in range(1, 31) if n not in (10, 20)]
    assert len(log) == len(set(lines_in_log(log)))


def test_strict_stops_at_the_first_invalid_line_and_resumes_after_the_fix(
    tmp_path: Path, data_file: Path
) -> None:
    log: list[tuple[ContactEvent, dict[str, bytes]]] = []
    with pytest.raises(ReplayError, match=r"day\.jsonl:10: bad_json.*--strict"):
        replayer(FakePublisher(log), tmp_path / "cp", strict=True).replay([data_file])
    assert lines_in_log(log) == list(range(1, 10))
    cp = load_checkpoint(tmp_path / "cp", data_file.resolve(), FakePublisher.topic, "h:1")
    assert cp is not None and cp.line == 9


def test_an_interrupt_checkpoints_what_was_acknowledged(tmp_path: Path, data_file: Path) -> None:
    log: list[tuple[ContactEvent, dict[str, bytes]]] = []
    pub = FakePublisher(log)
    sends = 0
    original = pub.send

    def send(ev: ContactEvent, headers: list[tuple[str, bytes]]) -> FakeFuture:
        nonlocal sends
        sends += 1
        if sends == 6:
            raise KeyboardInterrupt
        return original(ev, headers)

    pub.send = send  # type: ignore[method-assign]
    with pytest.raises(Interrupted, match="interrupted after line 5"):
        replayer(pub, tmp_path / "cp").replay([data_file])
    replayer(FakePublisher(log), tmp_path / "cp").replay([data_file])
    assert sorted(lines_in_log(log)) == [n for n in range(1, 31) if n not in (10, 20)]


# ---- pacing


def test_rate_spaces_events_evenly() -> None:
    pacer = Pacer(rate=10)
    ev = validate_event(event(1))
    assert pacer.delay(ev, now=100.0) == 0.0
    pacer.sent()
    assert pacer.delay(ev, now=100.0) == pytest.approx(0.1)
    pacer.sent()
    assert pacer.delay(ev, now=100.5) == 0.0  # behind schedule: no wait


def test_speedup_follows_event_time() -> None:
    pacer = Pacer(speedup=60)
    first = validate_event(event(0))
    later = validate_event(event(0, occurred_at="2024-05-06T09:10:00+08:00"))
    earlier = validate_event(event(0, occurred_at="2024-05-06T08:00:00+08:00"))
    assert pacer.delay(first, now=0.0) == 0.0
    assert pacer.delay(later, now=0.0) == pytest.approx(10.0)  # 10 minutes / 60
    assert pacer.delay(earlier, now=0.0) == 0.0
    assert isinstance(first.occurred_at, datetime)

"""Generic CTI/ACD JSON -> phone lifecycle events."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.sources.adapters.conftest import expected_event_id, load, summary, tel, validated
from vocflow.streams.sources.adapters import AdapterError, AdapterReason, parse_cti


def test_full_call_lifecycle() -> None:
    events = validated(parse_cti(load("cti/call_lifecycle.json")))
    assert summary(events) == [
        ("offered", "2024-05-06T09:15:00+08:00"),
        ("queued", "2024-05-06T09:15:03+08:00"),
        ("answered", "2024-05-06T09:15:42+08:00"),
        ("held", "2024-05-06T09:18:10+08:00"),
        ("transferred", "2024-05-06T09:19:02+08:00"),
        ("ended", "2024-05-06T09:21:30+08:00"),
        ("wrapup_done", "2024-05-06T09:23:00+08:00"),  # naive input read as Asia/Shanghai
    ]
    assert {e["contact_id"] for e in events} == {"CALL-20240506-000731"}
    assert {e["channel"] for e in events} == {"phone"}
    # The caller's number only ever appears as its pseudonym.
    assert {e["customer_id"] for e in events} == {tel("13800138000")}
    assert b"13800138000" not in orjson.dumps(events)
    answered, held, transferred, ended, wrapup = events[2:]
    assert answered["agent_id"] == "A1024"
    assert answered["payload"] == {"wait_seconds": 39.0}
    assert held["payload"] == {"hold_seconds": 45.5}
    assert transferred["payload"] == {"transfer_to": "complaints"}
    assert ended["queue"] == "complaints"
    assert ended["payload"] == {"talk_seconds": 302.5, "hold_seconds": 45.5}
    assert ended["text"].startswith("我这个月话费多扣了五十八块")
    assert ended["text"].endswith("再不处理我就投诉到工信部。")
    assert wrapup["payload"] == {"after_work_seconds": 90.0}
    # Native event ids key the event id; 'ext' is accepted and ignored.
    assert events[0]["event_id"] == expected_event_id("cti", "cti", "id", "acd-88120001")
    assert all(e["source"] == "cti" for e in events)


def test_abandoned_call_with_epoch_times_and_crm_id() -> None:
    events = validated(parse_cti(load("cti/call_abandoned.json"), source="avaya-hz"))
    assert summary(events) == [
        ("offered", "2024-05-06T10:02:11+08:00"),
        ("queued", "2024-05-06T10:02:11+08:00"),
        ("abandoned", "2024-05-06T10:03:05+08:00"),
    ]
    assert events[2]["payload"] == {"wait_seconds": 54.0}
    assert {e["customer_id"] for e in events} == {"CRM-5512093"}
    assert {e["source"] for e in events} == {"avaya-hz"}
    # Without a native id: call id + event + time, so offered and queued differ.
    assert events[0]["event_id"] == expected_event_id(
        "cti", "avaya-hz", "call", "CALL-20240506-000802", "offered", "2024-05-06T10:02:11+08:00"
    )
    assert len({e["event_id"] for e in events}) == 3


def test_redelivery_gives_the_same_ids_and_another_source_does_not() -> None:
    data = load("cti/call_lifecycle.json")
    first = [e["event_id"] for e in parse_cti(data)]
    assert [e["event_id"] for e in parse_cti(data)] == first
    assert len(set(first)) == len(first)
    assert not set(first) & {e["event_id"] for e in parse_cti(data, source="other-acd")}


@pytest.mark.parametrize(
    ("fixture", "reason", "loc", "message"),
    [
        (
            "cti/broken_answered_without_wait.json",
            AdapterReason.missing_field,
            "wait_seconds",
            "wait_seconds is required for a 'answered' event: seconds the caller waited",
        ),
        (
            "cti/broken_unknown_event.json",
            AdapterReason.unknown_value,
            "[1].event",
            "[1].event: unknown call event 'ringing'; use one of offered, queued",
        ),
        (
            "cti/broken_misspelt_field.json",
            AdapterReason.unknown_field,
            "wait_second",
            "unknown field(s) 'wait_second' in the object",
        ),
        ("cti/broken_truncated.json", AdapterReason.bad_json, "", "CTI input is not valid"),
    ],
)
def test_broken_inputs(fixture: str, reason: AdapterReason, loc: str, message: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_cti(load(fixture))
    assert err.value.reason is reason
    assert err.value.loc == loc
    assert message in err.value.message


@pytest.mark.parametrize(
    ("record", "reason", "loc"),
    [
        ({"event": "offered", "timestamp": 1714958100}, AdapterReason.missing_field, "call_id"),
        (
            {"call_id": "C 1", "event": "offered", "timestamp": 1},
            AdapterReason.invalid_value,
            "call_id",
        ),
        ({"call_id": "C1", "event": "offered"}, AdapterReason.missing_field, "timestamp"),
        ({"call_id": "C1", "event": 3, "timestamp": 1714958100}, AdapterReason.wrong_type, "event"),
        (
            {"call_id": "C1", "event": "ended", "timestamp": 1714958100, "talk_seconds": -1},
            AdapterReason.invalid_value,
            "talk_seconds",
        ),
        (
            {"call_id": "C1", "event": "ended", "timestamp": 1714958100, "talk_seconds": "60"},
            AdapterReason.wrong_type,
            "talk_seconds",
        ),
        (
            {"call_id": "C1", "event": "ended", "timestamp": 1714958100, "talk_seconds": 1e9},
            AdapterReason.invalid_value,
            "",
        ),  # beyond the schema's 7-day bound: backstop
        (
            {"call_id": "C1", "event": "offered", "timestamp": 1714958100, "queue": "q" * 65},
            AdapterReason.invalid_value,
            "queue",
        ),
        (
            {"call_id": "C1", "event": "offered", "timestamp": 1714958100, "caller": "未知"},
            AdapterReason.invalid_value,
            "caller",
        ),
        (
            {"call_id": "C1", "event": "offered", "timestamp": 1714958100, "ext": []},
            AdapterReason.wrong_type,
            "ext",
        ),
    ],
)
def test_field_errors(record: dict, reason: AdapterReason, loc: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_cti(orjson.dumps(record))
    assert err.value.reason is reason
    assert err.value.loc == loc


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'"offered"', AdapterReason.not_an_object),
        (b"[]", AdapterReason.empty),
        (b'[{"call_id": "C1"}, 5]', AdapterReason.not_an_object),
        (b"\xff\xfe{}", AdapterReason.bad_json),
    ],
)
def test_document_shape_errors(data: bytes, reason: AdapterReason) -> None:
    with pytest.raises(AdapterError) as err:
        parse_cti(data)
    assert err.value.reason is reason

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from vocflow.schemas import AgentEvent, ContactEvent, DeadLetter, Resolution
from vocflow.schemas.derived.enriched import CustomerProfile, Tags
from vocflow.schemas.publish import JSON_DIR, render_all

BASE = {
    "event_id": "e-1",
    "contact_id": "c-1",
    "channel": "phone",
    "event_type": "offered",
    "occurred_at": "2026-11-23T10:00:00+08:00",
}


def errors_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        ContactEvent.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["type"]) for e in info.value.errors()]


def test_minimal_event_keeps_its_offset() -> None:
    event = ContactEvent.model_validate(BASE)
    assert event.occurred_at.utcoffset() == timedelta(hours=8)
    assert event.schema_version == 1
    assert event.source == "unknown"
    assert event.payload is None


def test_answered_needs_wait_seconds() -> None:
    assert errors_of({**BASE, "event_type": "answered"}) == [("", "value_error")]
    ok = ContactEvent.model_validate(
        {**BASE, "event_type": "answered", "payload": {"wait_seconds": 12.5}}
    )
    assert ok.payload is not None and ok.payload.wait_seconds == 12.5


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("abandoned", {"wait_seconds": 3}),
        ("timed_out", {"wait_seconds": 300}),
        ("held", {"hold_seconds": 20}),
        ("transferred", {"transfer_to": "billing"}),
        ("ended", {"talk_seconds": 100}),
        ("wrapup_done", {"after_work_seconds": 30}),
        ("survey", {"nps": 9}),
        ("survey", {"fcr": False}),
    ],
)
def test_each_typed_payload_is_accepted(event_type: str, payload: dict) -> None:
    event = ContactEvent.model_validate({**BASE, "event_type": event_type, "payload": payload})
    assert event.payload is not None


def test_survey_needs_a_score() -> None:
    with pytest.raises(ValidationError, match="at least one of payload fields csat, fcr, nps"):
        ContactEvent.model_validate({**BASE, "event_type": "survey", "payload": {}})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"channel": "fax"}, [("channel", "enum")]),
        ({"event_type": "exploded"}, [("event_type", "enum")]),
        ({"occurred_at": "2026-11-23T10:00:00"}, [("occurred_at", "timezone_aware")]),
        ({"event_id": ""}, [("event_id", "string_too_short")]),
        ({"event_id": "has space"}, [("event_id", "string_pattern_mismatch")]),
        ({"contact_id": 7}, [("contact_id", "string_type")]),
        ({"surprise": 1}, [("surprise", "extra_forbidden")]),
        ({"text": "字" * 20_001}, [("text", "string_too_long")]),
        ({"event_type": "survey", "payload": {"csat": 6}}, [("payload.csat", "less_than_equal")]),
        (
            {"event_type": "answered", "payload": {"wait_seconds": -1}},
            [("payload.wait_seconds", "greater_than_equal")],
        ),
    ],
)
def test_invalid_events_name_the_field(change: dict, expected: list) -> None:
    assert errors_of({**BASE, **change}) == expected


def test_missing_ids_are_each_reported() -> None:
    data = {k: v for k, v in BASE.items() if k not in ("event_id", "contact_id")}
    assert errors_of(data) == [("event_id", "missing"), ("contact_id", "missing")]


def test_events_are_immutable() -> None:
    event = ContactEvent.model_validate(BASE)
    with pytest.raises(ValidationError):
        event.queue = "x"  # type: ignore[misc]


def test_agent_event_reason_only_when_not_ready() -> None:
    at = datetime(2026, 11, 23, 8, tzinfo=UTC)
    ok = AgentEvent(event_id="a1", agent_id="A1", state="not_ready", reason="break", occurred_at=at)
    assert ok.reason == "break"
    with pytest.raises(ValidationError, match="reason is only allowed with state 'not_ready'"):
        AgentEvent(event_id="a2", agent_id="A1", state="ready", reason="break", occurred_at=at)


def test_resolution_and_profile_defaults() -> None:
    tz = timezone(timedelta(hours=8))
    r = Resolution(
        event_id="r1",
        contact_id="c1",
        department="billing",
        resolved_at=datetime(2026, 11, 23, 9, tzinfo=tz),
    )
    assert r.outcome.value == "resolved"
    assert CustomerProfile(customer_id="C1").tier.value == "standard"
    assert "urgency" in Tags.model_fields


def test_published_json_schemas_are_fresh() -> None:
    rendered = render_all()
    assert sorted(rendered) == sorted(p.name for p in JSON_DIR.glob("*.json"))
    for name, text in rendered.items():
        assert (JSON_DIR / name).read_text(encoding="utf-8") == text, f"{name} is stale"


def test_json_schema_enforces_payload_rules_like_pydantic() -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads((JSON_DIR / "contact_event.v1.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    good = {**BASE, "event_type": "answered", "payload": {"wait_seconds": 3}}
    assert list(validator.iter_errors(good)) == []
    bad = [
        {**BASE, "event_type": "answered"},
        {**BASE, "event_type": "answered", "payload": {"talk_seconds": 3}},
        {**BASE, "event_type": "survey", "payload": {}},
        {**BASE, "channel": "fax"},
        {**BASE, "extra": 1},
    ]
    for data in bad:
        assert list(validator.iter_errors(data)), data
        with pytest.raises(ValidationError):
            ContactEvent.model_validate(data)


def test_dead_letter_round_trip_keeps_bytes() -> None:
    letter = DeadLetter.model_validate(
        {
            "reason": "bad_json",
            "stage": "normalize",
            "source": {"topic": "t", "partition": 1, "offset": 5},
            "original_b64": "AAEC",
            "original_size": 3,
            "rejected_at": "2026-11-23T00:00:00Z",
        }
    )
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert again.original_bytes() == b"\x00\x01\x02"

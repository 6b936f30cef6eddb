from __future__ import annotations

import base64
import itertools
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from vocflow.schemas import ContactEvent, DeadLetter, SourceRef
from vocflow.streams.stages.normalize import MAX_DLQ_ORIGINAL_BYTES, normalize
from vocflow.streams.tools.traffic import EXPECTED_REASON, MALFORMED_KINDS, generate, malformed

SRC = SourceRef(topic="contacts.raw", partition=3, offset=42, key="c-1")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
GOOD = {
    "event_id": "e-1",
    "contact_id": "c-1",
    "channel": "chat",
    "event_type": "message",
    "occurred_at": "2026-11-23T10:00:00+08:00",
    "text": "宽带断网了",
}


def reject(raw: bytes, **kw: int) -> DeadLetter:
    result = normalize(raw, SRC, now=NOW, **kw)
    assert isinstance(result, DeadLetter), result
    assert result.source == SRC
    assert result.stage == "normalize"
    assert result.rejected_at == NOW
    return result


def test_valid_event() -> None:
    result = normalize(orjson.dumps(GOOD), SRC)
    assert isinstance(result, ContactEvent)
    assert result.text == "宽带断网了"
    assert result.contact_id == "c-1"


def test_utf8_bom_is_tolerated() -> None:
    assert isinstance(normalize(b"\xef\xbb\xbf" + orjson.dumps(GOOD), SRC), ContactEvent)


def test_bad_json_keeps_original_bytes() -> None:
    raw = b'{"event_id": "e-1", '
    letter = reject(raw)
    assert letter.reason.value == "bad_json"
    assert base64.b64decode(letter.original_b64) == raw
    assert letter.original_size == len(raw)
    assert letter.truncated is False
    assert letter.errors[0].msg.startswith("not valid JSON")


def test_invalid_utf8_says_where() -> None:
    raw = b'{"text": "\xc3\x28"}'
    letter = reject(raw)
    assert letter.reason.value == "invalid_utf8"
    assert letter.errors[0].msg == "not valid UTF-8 at byte 10; re-encode the source as UTF-8"
    assert letter.original_bytes() == raw


def test_gbk_text_is_invalid_utf8() -> None:
    raw = orjson.dumps({**GOOD, "text": "X"}).replace(b'"X"', '"断网"'.encode("gbk"))
    assert reject(raw).reason.value == "invalid_utf8"


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_non_objects(raw: bytes) -> None:
    letter = reject(raw)
    assert letter.reason.value == "not_an_object"


def test_oversized_is_rejected_before_parsing() -> None:
    raw = orjson.dumps({**GOOD, "text": "x" * 5000})
    letter = reject(raw, max_bytes=2048)
    assert letter.reason.value == "oversized"
    assert letter.errors[0].msg == f"event is {len(raw)} bytes; the limit is 2048"
    assert letter.original_bytes() == raw


def test_huge_original_is_truncated_in_the_envelope() -> None:
    raw = b"x" * (MAX_DLQ_ORIGINAL_BYTES + 10)
    letter = reject(raw, max_bytes=1024)
    assert letter.truncated is True
    assert letter.original_size == len(raw)
    assert len(letter.original_bytes()) == MAX_DLQ_ORIGINAL_BYTES


@pytest.mark.parametrize(
    ("change", "reason", "locs"),
    [
        ({"channel": "fax"}, "unknown_value", ["channel"]),
        ({"event_id": 5}, "wrong_type", ["event_id"]),
        ({"occurred_at": "yesterday"}, "wrong_type", ["occurred_at"]),
        ({"occurred_at": "2026-11-23T10:00:00"}, "invalid_value", ["occurred_at"]),
        ({"colour": "red"}, "invalid_value", ["colour"]),
        ({"event_type": "answered"}, "invalid_value", [""]),
        # several problems: an unknown value ranks above a wrong type
        ({"event_id": None, "channel": "fax"}, "unknown_value", ["event_id", "channel"]),
    ],
)
def test_schema_violations(change: dict, reason: str, locs: list[str]) -> None:
    letter = reject(orjson.dumps({**GOOD, **change}))
    assert letter.reason.value == reason
    assert [e.loc for e in letter.errors] == locs


def test_missing_fields_rank_above_others() -> None:
    data = {k: v for k, v in GOOD.items() if k != "contact_id"} | {"channel": "fax"}
    letter = reject(orjson.dumps(data))
    assert letter.reason.value == "missing_field"
    assert [(e.loc, e.type) for e in letter.errors] == [
        ("contact_id", "missing"),
        ("channel", "enum"),
    ]


def test_unknown_field_message_is_actionable() -> None:
    letter = reject(orjson.dumps({**GOOD, "custmer_id": "C1"}))
    assert letter.errors[0].msg == "unknown field (check its spelling)"


def test_error_messages_do_not_echo_input_values() -> None:
    letter = reject(orjson.dumps({**GOOD, "contact_id": 13812345678}))
    assert "13812345678" not in letter.model_dump_json(exclude={"original_b64"})


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_generated_malformed_kind_gets_its_reason(kind: str) -> None:
    raw = malformed(__import__("random").Random(1), kind, 1, max_bytes=4096)
    assert reject(raw, max_bytes=4096).reason.value == EXPECTED_REASON[kind]


def test_generated_traffic_validates_exactly_as_labelled() -> None:
    kinds = Counter()
    for record in itertools.islice(generate(seed=7, malformed_ratio=0.1, max_bytes=4096), 3000):
        result = normalize(record.value, SRC, max_bytes=4096)
        assert isinstance(result, ContactEvent) is record.valid
        if not record.valid:
            kinds[result.reason.value] += 1
    assert set(kinds) == set(EXPECTED_REASON.values())

from __future__ import annotations

import base64
import itertools
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from vocflow.schemas import ContactEvent, DeadLetter, SourceRef
from vocflow.streams.stages import normalize as normalize_module
from vocflow.streams.stages.normalize import (
    MAX_DEPTH,
    MAX_DLQ_ORIGINAL_BYTES,
    normalize,
    published,
)
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


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _with(field: str, value: bytes) -> bytes:
    return orjson.dumps(GOOD)[:-1] + b',"' + field.encode() + b'":' + value + b"}"


def test_deeply_nested_enum_value_is_dead_lettered_not_a_recursion_error() -> None:
    # Found by the fuzz suite: pydantic's enum check took the repr of 992 nested
    # lists and overflowed the stack (valid JSON: orjson allows 1,024 levels).
    letter = reject(b'{"channel":' + _nested(992) + b"}")
    assert letter.reason.value == "missing_field"  # the schema's reason still ranks first
    assert letter.errors[0].loc == "channel"
    assert letter.errors[0].type == "too_deep"
    assert f"nested deeper than {MAX_DEPTH} levels" in letter.errors[0].msg


@pytest.mark.parametrize(
    ("field", "reason", "schema_error"),
    [
        ("channel", "unknown_value", "enum"),
        ("event_type", "unknown_value", "enum"),
        ("text", "wrong_type", "string_type"),
        ("payload", "wrong_type", "model_type"),
        ("colour", "invalid_value", "extra_forbidden"),
    ],
)
def test_too_deep_values_keep_the_schema_reason(field: str, reason: str, schema_error: str) -> None:
    letter = reject(_with(field, _nested(1000)))
    assert letter.reason.value == reason
    assert [(e.loc, e.type) for e in letter.errors] == [(field, "too_deep"), (field, schema_error)]


def test_nesting_up_to_the_limit_is_left_to_the_schema() -> None:
    # The event object is level 1: MAX_DEPTH - 1 lists inside it reach the limit.
    letter = reject(_with("colour", _nested(MAX_DEPTH - 1)))
    assert [e.type for e in letter.errors] == ["extra_forbidden"]
    letter = reject(_with("colour", _nested(MAX_DEPTH)))
    assert [e.type for e in letter.errors] == ["too_deep", "extra_forbidden"]


def test_too_deep_under_an_empty_key_is_located_there() -> None:
    letter = reject(_with("", b'{"a":' + _nested(1000) + b"}"))
    assert (letter.errors[0].loc, letter.errors[0].type) == ("", "too_deep")


def test_many_brackets_in_a_flat_event_are_fine() -> None:
    event = {**GOOD, "text": "[10:00] {断网} " * (MAX_DEPTH + 1)}
    assert isinstance(normalize(orjson.dumps(event), SRC), ContactEvent)
    # With a payload the bytes are counted, then the fields walked: still two levels.
    event["payload"] = {"wait_seconds": 1.0}
    assert isinstance(normalize(orjson.dumps(event), SRC), ContactEvent)


def test_recursion_error_in_validation_is_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last line of defence: with the depth bound out of the way, the enum repr
    # overflows the stack again and must still end as a dead letter.
    monkeypatch.setattr(normalize_module, "MAX_DEPTH", 10_000)
    letter = reject(_with("channel", _nested(1000)))
    assert letter.reason.value == "invalid_value"
    assert [(e.loc, e.type) for e in letter.errors] == [("", "recursion")]


def test_the_published_copy_masks_the_text_and_keeps_everything_else() -> None:
    clear = ContactEvent.model_validate(
        {
            "event_id": "e1",
            "contact_id": "c1",
            "channel": "chat",
            "event_type": "message",
            "occurred_at": "2026-11-20T09:00:00+08:00",
            "text": "我叫张伟，电话13800138000，邮箱 a.b@x.com，宽带断了",
        }
    )
    masked = published(clear)
    assert masked.text == "我叫[NAME]，电话[PHONE]，邮箱 [EMAIL]，宽带断了"
    assert masked.model_dump(exclude={"text"}) == clear.model_dump(exclude={"text"})
    plain = clear.model_copy(update={"text": "宽带断了"})
    assert published(plain) is plain

"""Shared adapter rules: times, pseudonyms, errors, the registry."""

from __future__ import annotations

import pytest

from tests.unit.sources.adapters.conftest import tel
from vocflow.schemas import Reason
from vocflow.schemas.source.contact import MAX_TEXT_CHARS
from vocflow.streams.privacy.pseudonyms import pseudonym
from vocflow.streams.sources.adapters import ADAPTERS, AdapterError, AdapterReason
from vocflow.streams.sources.adapters.common import (
    ECHO_CHARS,
    Record,
    check_size,
    clip,
    clip_text,
    normalize_msisdn,
    parse_time,
    shown,
)


def test_registry_has_every_channel_format() -> None:
    assert sorted(ADAPTERS) == ["chat", "cti", "email", "freeswitch", "sms", "survey", "wechat"]
    assert all(callable(fn) for fn in ADAPTERS.values())


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2024-05-06T09:15:00+08:00", "2024-05-06T09:15:00+08:00"),
        ("2024-05-06T01:15:00Z", "2024-05-06T01:15:00+00:00"),
        ("2024-05-06 09:15:00", "2024-05-06T09:15:00+08:00"),  # naive = Asia/Shanghai
        (1714958100, "2024-05-06T09:15:00+08:00"),  # epoch seconds
        (1714958100123, "2024-05-06T09:15:00.123000+08:00"),  # milliseconds
        (1714958100123456, "2024-05-06T09:15:00.123456+08:00"),  # microseconds
        ("1714958100", "2024-05-06T09:15:00+08:00"),
        (1714958100.5, "2024-05-06T09:15:00.500000+08:00"),
    ],
)
def test_parse_time(value: object, iso: str) -> None:
    assert parse_time(value, "t").isoformat() == iso


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("06/05/2024", AdapterReason.invalid_value),
        ("²", AdapterReason.invalid_value),
        (True, AdapterReason.wrong_type),
        ([2024], AdapterReason.wrong_type),
        (0, AdapterReason.invalid_value),
        (-5, AdapterReason.invalid_value),
        (float("inf"), AdapterReason.invalid_value),
        (1e30, AdapterReason.invalid_value),
    ],
)
def test_parse_time_rejects(value: object, reason: AdapterReason) -> None:
    with pytest.raises(AdapterError) as err:
        parse_time(value, "x.at")
    assert err.value.reason is reason
    assert err.value.loc == "x.at"


@pytest.mark.parametrize(
    "raw", ["13800138000", "+86 138-0013-8000", "008613800138000", "8613800138000", "(138)00138000"]
)
def test_mainland_mobiles_normalize_to_one_pseudonym(raw: str) -> None:
    assert normalize_msisdn(raw, "n") == "13800138000"
    assert pseudonym("tel", normalize_msisdn(raw, "n")) == tel("13800138000")


def test_landlines_and_short_codes_are_kept_as_digits() -> None:
    assert normalize_msisdn("021-5012 3456", "n") == "02150123456"
    assert normalize_msisdn("10086", "n") == "10086"
    assert normalize_msisdn("+44 20 7946 0958", "n") == "+442079460958"


@pytest.mark.parametrize("raw", ["张三", "12", "abc123", "+", "1" * 21])
def test_not_a_phone_number(raw: str) -> None:
    with pytest.raises(AdapterError) as err:
        normalize_msisdn(raw, "from")
    assert err.value.reason is AdapterReason.invalid_value
    assert "from must be a phone number" in err.value.message


def test_error_serialization_and_dead_letter_mapping() -> None:
    err = AdapterError("truncated_mime", "cut", loc="part 1")
    assert err.to_json() == {"reason": "truncated_mime", "loc": "part 1", "message": "cut"}
    assert str(err) == "truncated_mime: cut"
    assert err.dead_letter_reason is Reason.invalid_value
    assert AdapterError("bad_json", "x").dead_letter_reason is Reason.bad_json
    assert AdapterError("oversized", "x").dead_letter_reason is Reason.oversized


def test_size_checks() -> None:
    with pytest.raises(AdapterError) as err:
        check_size(b"x" * 11, 10, "SMS")
    assert err.value.reason is AdapterReason.oversized
    assert "11 bytes, above the 10-byte limit" in err.value.message
    with pytest.raises(AdapterError) as err:
        check_size(b" \n ", 10, "SMS")
    assert err.value.reason is AdapterReason.empty
    with pytest.raises(AdapterError) as err:
        check_size("text", 10, "SMS")  # type: ignore[arg-type]
    assert err.value.reason is AdapterReason.wrong_type


def test_long_texts_are_cut_blank_ones_dropped() -> None:
    assert clip_text("  ") is None
    assert clip_text(None) is None
    assert clip_text(" 你好 ") == "你好"
    assert len(clip_text("字" * (MAX_TEXT_CHARS + 5)) or "") == MAX_TEXT_CHARS


@pytest.mark.parametrize("fmt", sorted(ADAPTERS))
def test_every_adapter_rejects_empty_and_non_bytes_input(fmt: str) -> None:
    for data in (b"", b"   \r\n"):
        with pytest.raises(AdapterError) as err:
            ADAPTERS[fmt](data)
        assert err.value.reason is AdapterReason.empty
    with pytest.raises(AdapterError) as err:
        ADAPTERS[fmt]("not bytes")
    assert err.value.reason is AdapterReason.wrong_type


@pytest.mark.parametrize("fmt", sorted(ADAPTERS))
def test_every_adapter_rejects_a_bad_source(fmt: str) -> None:
    with pytest.raises(AdapterError) as err:
        ADAPTERS[fmt](b"{}", source=" ")
    assert err.value.reason is AdapterReason.invalid_value
    assert "source" in err.value.message


def test_quoted_values_are_bounded_and_never_the_repr_of_a_container() -> None:
    assert clip("abc") == "abc"
    assert clip("x" * 500) == "x" * ECHO_CHARS + "…"
    assert shown("abc") == "'abc'"
    assert shown("x" * 500) == repr("x" * ECHO_CHARS + "…")
    assert [shown(v) for v in (None, True, 1.5, 42)] == ["None", "True", "1.5", "42"]
    assert shown(10**5000) == "<16610-bit int>"  # repr would raise ValueError
    deep: list[object] = []
    for _ in range(100_000):  # repr of this overflows any stack
        deep = [deep]
    assert shown(deep) == "[…] (1 items)"
    assert shown({"a": deep}) == "{…} (1 keys)"


@pytest.mark.parametrize("key", ["csat", "fcr"])
def test_wrong_type_messages_do_not_repr_nested_values(key: str) -> None:
    # Record.integer / Record.boolean quoted the value with !r: 1,000 nested lists (valid
    # JSON) in a survey's csat or fcr overflowed the stack instead of a wrong_type.
    value: list[object] = []
    for _ in range(1000):
        value = [value]
    record = Record({key: value}, "", known=("csat", "fcr"))
    with pytest.raises(AdapterError) as err:
        record.integer(key, 1, 5) if key == "csat" else record.boolean(key)
    assert err.value.reason is AdapterReason.wrong_type
    assert err.value.message.endswith("got list […] (1 items)")
    data = b'{"contact_id":"c1","answered_at":1714958100,"%s":' % key.encode()
    with pytest.raises(AdapterError) as err:
        ADAPTERS["survey"](data + b"[" * 1000 + b"]" * 1000 + b"}")
    assert err.value.reason is AdapterReason.wrong_type


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(AdapterError) as err:
        parse_time("x" * 100_000, "timestamp")
    assert len(err.value.message) < 300
    with pytest.raises(AdapterError) as err:
        normalize_msisdn("x" * 100_000, "caller")
    assert len(err.value.message) < 300

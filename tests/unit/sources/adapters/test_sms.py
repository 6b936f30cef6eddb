"""Inbound SMS -> received events with pseudonymous customers."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.sources.adapters.conftest import expected_event_id, load, summary, tel, validated
from vocflow.streams.sources.adapters import AdapterError, AdapterReason, parse_sms


def test_inbound_batch() -> None:
    events = validated(parse_sms(load("sms/inbound.json")))
    assert summary(events) == [
        ("received", "2024-05-06T09:40:12+08:00"),
        ("received", "2024-05-06T10:02:11+08:00"),
    ]
    first, second = events
    assert first["text"] == "查询本月话费余额，为什么这个月扣了两次月租？"
    assert second["text"] == "TD"
    # Same sender written two ways -> one pseudonym; the number is never in clear.
    assert first["customer_id"] == second["customer_id"] == tel("13905712233")
    assert b"13905712233" not in orjson.dumps(events)
    assert b"0571" not in orjson.dumps(events)
    assert {e["queue"] for e in events} == {"10086"}
    assert {e["channel"] for e in events} == {"sms"}
    assert first["event_id"] == expected_event_id("sms", "sms", "id", "SMSMO-202405060940-88231")
    # Each SMS is its own contact.
    assert first["contact_id"] != second["contact_id"]
    assert first["contact_id"].startswith("sms:")


def test_redelivery_without_gateway_id_is_stable() -> None:
    one = b'{"from": "13905712233", "to": "10086", "text": "TD", "received_at": 1714960931}'
    assert parse_sms(one) == parse_sms(one)
    other = one.replace(b'"TD"', b'"T D"')
    assert parse_sms(one)[0]["event_id"] != parse_sms(other)[0]["event_id"]


@pytest.mark.parametrize(
    ("fixture", "reason", "loc", "message"),
    [
        (
            "sms/broken_bad_msisdn.json",
            AdapterReason.invalid_value,
            "from",
            "from must be a phone number (digits, optional leading +), got '张三'",
        ),
        (
            "sms/broken_missing_text.json",
            AdapterReason.missing_field,
            "text",
            "text is required: the message text",
        ),
    ],
)
def test_broken_sms(fixture: str, reason: AdapterReason, loc: str, message: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_sms(load(fixture))
    assert err.value.reason is reason
    assert err.value.loc == loc
    assert err.value.message == message


def test_blank_text_is_rejected() -> None:
    with pytest.raises(AdapterError) as err:
        parse_sms(b'{"from": "13905712233", "to": "10086", "text": " ", "received_at": 1}')
    assert err.value.reason is AdapterReason.invalid_value
    assert err.value.loc == "text"

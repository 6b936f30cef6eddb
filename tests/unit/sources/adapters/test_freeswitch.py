"""FreeSWITCH mod_callcenter events -> phone lifecycle events."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.sources.adapters.conftest import expected_event_id, load, summary, tel, validated
from vocflow.streams.sources.adapters import AdapterError, AdapterReason, parse_freeswitch
from vocflow.streams.sources.adapters.freeswitch import _json_header

SESSION = "8f0e2c8a-1b7d-4a53-9a0c-3f4e5d6c7b81"
MEMBER = "c5b3a1f2-6d4e-4f0a-b1c2-9e8d7f6a5b4c"
CALLER = tel("13800138000")


def test_member_queue_start_in_plain_format_with_socket_envelope() -> None:
    events = validated(parse_freeswitch(load("freeswitch/member-queue-start.txt")))
    assert summary(events) == [
        ("offered", "2024-05-06T09:15:00+08:00"),
        ("queued", "2024-05-06T09:15:00+08:00"),
    ]
    for ev in events:
        assert ev["contact_id"] == SESSION
        assert ev["queue"] == "billing@default"  # URL-decoded
        assert ev["customer_id"] == CALLER
        assert ev["channel"] == "phone"
        assert "agent_id" not in ev
    assert events[0]["event_id"] == expected_event_id("freeswitch", "freeswitch", MEMBER, "offered")
    assert events[1]["event_id"] == expected_event_id("freeswitch", "freeswitch", MEMBER, "queued")


def test_bridge_agent_start_is_the_answer() -> None:
    [ev] = validated(parse_freeswitch(load("freeswitch/bridge-agent-start.txt")))
    assert ev["event_type"] == "answered"
    assert ev["occurred_at"] == "2024-05-06T09:15:42+08:00"  # CC-Agent-Answered-Time
    assert ev["agent_id"] == "1024@default"
    assert ev["payload"] == {"wait_seconds": 42.0}  # answered - joined
    assert ev["event_id"] == expected_event_id("freeswitch", "freeswitch", MEMBER, "answered")


def test_bridge_agent_end_in_json_format_is_the_end() -> None:
    [ev] = validated(parse_freeswitch(load("freeswitch/bridge-agent-end.json")))
    assert ev["event_type"] == "ended"
    assert ev["occurred_at"] == "2024-05-06T09:21:30+08:00"  # CC-Bridge-Terminated-Time
    assert ev["payload"] == {"talk_seconds": 348.0}  # terminated - answered
    assert ev["agent_id"] == "1024@default"
    assert ev["contact_id"] == SESSION


def test_cancel_by_caller_is_abandoned() -> None:
    [ev] = validated(parse_freeswitch(load("freeswitch/member-queue-end-cancel.txt")))
    assert ev["event_type"] == "abandoned"  # CC-Cancel-Reason BREAK_OUT
    assert ev["occurred_at"] == "2024-05-06T10:03:05+08:00"
    assert ev["payload"] == {"wait_seconds": 54.0}
    assert ev["contact_id"] == "0b9c8d7e-6f5a-4b3c-9d2e-1f0a9b8c7d6e"
    assert ev["customer_id"] == tel("02150123456")  # landline, digits only


def test_queue_timeout_is_timed_out_and_anonymous_caller_is_unknown() -> None:
    [ev] = validated(parse_freeswitch(load("freeswitch/member-queue-end-timeout.json")))
    assert ev["event_type"] == "timed_out"  # NO_AGENT_TIMEOUT
    assert ev["occurred_at"] == "2024-05-06T20:31:07+08:00"
    assert ev["payload"] == {"wait_seconds": 300.0}
    assert "customer_id" not in ev


@pytest.mark.parametrize(
    "fixture",
    [
        "freeswitch/member-queue-end-terminated.txt",
        "freeswitch/agent-offering.txt",
        "freeswitch/agent-status-change.txt",
    ],
)
def test_ignored_actions(fixture: str) -> None:
    assert parse_freeswitch(load(fixture)) == []


def test_the_whole_call_has_distinct_stable_ids() -> None:
    names = ["member-queue-start.txt", "bridge-agent-start.txt", "bridge-agent-end.json"]
    events = [e for n in names for e in parse_freeswitch(load(f"freeswitch/{n}"))]
    assert [e["event_type"] for e in events] == ["offered", "queued", "answered", "ended"]
    assert len({e["event_id"] for e in events}) == 4
    again = [e for n in names for e in parse_freeswitch(load(f"freeswitch/{n}"))]
    assert again == events


def _headers(**extra: str) -> dict[str, str]:
    base = {
        "Event-Name": "CUSTOM",
        "Event-Subclass": "callcenter::info",
        "CC-Queue": "network@default",
        "CC-Member-UUID": "m-1",
        "CC-Member-Session-UUID": "s-1",
        "CC-Member-CID-Number": "+8613900001111",
    }
    return {**base, **extra}


def test_json_array_and_fallback_to_event_date_timestamp() -> None:
    data = orjson.dumps(
        [
            _headers(
                **{"CC-Action": "member-queue-start", "Event-Date-Timestamp": "1714958100500000"}
            ),
            _headers(**{"CC-Action": "members-count", "CC-Count": "3"}),
        ]
    )
    events = validated(parse_freeswitch(data, source="fs-hz"))
    assert summary(events) == [
        ("offered", "2024-05-06T09:15:00.500000+08:00"),
        ("queued", "2024-05-06T09:15:00.500000+08:00"),
    ]
    assert events[0]["customer_id"] == tel("13900001111")
    assert events[0]["source"] == "fs-hz"


@pytest.mark.parametrize(
    ("fixture", "reason", "loc", "message"),
    [
        (
            "freeswitch/broken-no-session-uuid.txt",
            AdapterReason.missing_field,
            "CC-Member-Session-UUID",
            "header CC-Member-Session-UUID is required for CC-Action bridge-agent-start",
        ),
        (
            "freeswitch/broken-not-callcenter.txt",
            AdapterReason.unsupported,
            "Event-Subclass",
            "event CHANNEL_ANSWER is not a mod_callcenter event",
        ),
        (
            "freeswitch/broken-answer-before-join.txt",
            AdapterReason.invalid_value,
            "",
            "wait (CC-Agent-Answered-Time - Joined-Time) is negative (-58 s)",
        ),
        (
            "freeswitch/broken-garbage.txt",
            AdapterReason.bad_format,
            "line 1",
            "line 1 is not a 'Header-Name: value' line",
        ),
    ],
)
def test_broken_events(fixture: str, reason: AdapterReason, loc: str, message: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_freeswitch(load(fixture))
    assert err.value.reason is reason
    assert err.value.loc == loc
    assert message in err.value.message


@pytest.mark.parametrize(
    ("extra", "reason", "loc"),
    [
        ({"CC-Action": "member-queue-jump"}, AdapterReason.unknown_value, "CC-Action"),
        (
            {"CC-Action": "member-queue-end", "CC-Cause": "Exploded"},
            AdapterReason.unknown_value,
            "CC-Cause",
        ),
        (
            {
                "CC-Action": "member-queue-end",
                "CC-Cause": "Cancel",
                "CC-Member-Joined-Time": "1714958100",
            },
            AdapterReason.missing_field,
            "CC-Member-Leaving-Time",
        ),
        (
            {
                "CC-Action": "bridge-agent-start",
                "CC-Agent": "1001@default",
                "CC-Agent-Answered-Time": "soon",
                "CC-Member-Joined-Time": "1714958100",
            },
            AdapterReason.invalid_value,
            "CC-Agent-Answered-Time",
        ),
        (
            {
                "CC-Action": "bridge-agent-end",
                "CC-Agent": "1001@default",
                "CC-Agent-Answered-Time": "1714958100",
            },
            AdapterReason.missing_field,
            "CC-Bridge-Terminated-Time",
        ),
        (
            {
                "CC-Action": "bridge-agent-start",
                "CC-Agent": "agent one",
                "CC-Agent-Answered-Time": "1714958100",
                "CC-Member-Joined-Time": "1714958000",
            },
            AdapterReason.invalid_value,
            "CC-Agent",
        ),
        (
            {"Event-Subclass": "conference::maintenance", "CC-Action": "x"},
            AdapterReason.unsupported,
            "Event-Subclass",
        ),
    ],
)
def test_header_errors(extra: dict[str, str], reason: AdapterReason, loc: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_freeswitch(orjson.dumps(_headers(**extra)))
    assert err.value.reason is reason
    assert err.value.loc == loc


def test_plain_values_must_be_url_encoded_utf8() -> None:
    with pytest.raises(AdapterError) as err:
        parse_freeswitch(b"Event-Subclass: callcenter%3A%3Ainfo\nCC-Member-CID-Name: %C4%E3\n")
    assert err.value.reason is AdapterReason.undecodable
    assert err.value.loc == "CC-Member-CID-Name"


@pytest.mark.parametrize(
    "data",
    [b"\x1c", b"\x1d\x1e\x1f", "\x85".encode(), "\u2028".encode(), "\u3000\n\n\u3000".encode()],
)
def test_unicode_whitespace_only_is_empty(data: bytes) -> None:
    # Found by the fuzz suite: bytes.strip() (the size check) keeps these, str.strip()
    # (the plain parser) removes them, and no header block was left (IndexError).
    with pytest.raises(AdapterError) as err:
        parse_freeswitch(data)
    assert err.value.reason is AdapterReason.empty


def test_deeply_nested_json_header_is_a_wrong_type_not_a_recursion_error() -> None:
    # Found by the fuzz suite: str() of 995 nested lists overflowed the stack.
    data = b'{"Event-Name":' + b"[" * 995 + b"]" * 995 + b"}"
    with pytest.raises(AdapterError) as err:
        parse_freeswitch(data)
    assert err.value.reason is AdapterReason.wrong_type
    assert err.value.loc == "Event-Name"
    assert "must be a string (or an array of strings), got a nested array" in err.value.message


def test_json_header_values_must_be_scalars_or_arrays_of_them() -> None:
    with pytest.raises(AdapterError) as err:
        parse_freeswitch(orjson.dumps([{**_headers(), "CC-Queue": {"name": "q"}}]))
    assert err.value.reason is AdapterReason.wrong_type
    assert err.value.loc == "[0].CC-Queue"
    # A multi-valued header (FreeSWITCH writes a JSON array of strings) is read as the
    # plain format writes it, and numbers as their text.
    data = orjson.dumps(
        {
            **_headers(**{"CC-Action": "member-queue-start"}),
            "variable_codecs": ["PCMA", "PCMU"],
            "CC-Member-Joined-Time": 1714958100,
        }
    )
    assert summary(validated(parse_freeswitch(data))) == [
        ("offered", "2024-05-06T09:15:00+08:00"),
        ("queued", "2024-05-06T09:15:00+08:00"),
    ]
    assert _json_header("variable_codecs", ["PCMA", "PCMU"], "") == "ARRAY::PCMA|:PCMU"


def test_error_messages_quote_at_most_about_100_characters_of_a_value() -> None:
    huge = "X" * 200_000
    for extra in (
        {"Event-Name": huge},
        {"CC-Action": huge},
        {"CC-Action": "member-queue-end", "CC-Cause": huge},
    ):
        with pytest.raises(AdapterError) as err:
            parse_freeswitch(orjson.dumps(_headers(**extra)))
        assert "X" * 100 + "…" in err.value.message
        assert len(err.value.message) < 500

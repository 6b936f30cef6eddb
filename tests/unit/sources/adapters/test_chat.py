"""Chat transcripts -> chat lifecycle events."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.sources.adapters.conftest import expected_event_id, load, summary, validated
from vocflow.streams.sources.adapters import AdapterError, AdapterReason, parse_chat


def test_answered_session() -> None:
    events = validated(parse_chat(load("chat/transcript_answered.json")))
    assert summary(events) == [
        ("offered", "2024-05-06T10:42:33+08:00"),
        ("message", "2024-05-06T10:43:09+08:00"),
        ("queued", "2024-05-06T10:43:10+08:00"),
        ("answered", "2024-05-06T10:45:40+08:00"),
        ("message", "2024-05-06T10:46:15+08:00"),
        ("message", "2024-05-06T10:49:30+08:00"),  # the empty (image) line makes no event
        ("ended", "2024-05-06T10:51:02+08:00"),
    ]
    offered, first_msg, _, answered, *_, ended = events
    assert offered["text"] == "家里宽带从昨晚开始断网，光猫LOS灯一直红灯闪"
    assert first_msg["text"] == "重启过了没用，转人工"
    assert events[5]["text"] == "好吧，断网这几天的费用能不能减免？"
    assert answered["agent_id"] == "W3107"
    assert answered["payload"] == {"wait_seconds": 150.0}  # from queued_at, not started_at
    assert ended["payload"] == {"talk_seconds": 322.0}
    assert ended["agent_id"] == "W3107"
    # Bot, agent and system lines never become customer text.
    texts = " ".join(e.get("text", "") for e in events)
    assert "智能客服" not in texts and "工号3107" not in texts and "排队" not in texts
    assert {e["contact_id"] for e in events} == {"WEB-20240506-104233"}
    assert {e["customer_id"] for e in events} == {"U88310275"}
    assert {e["queue"] for e in events} == {"online_broadband"}
    assert {e["channel"] for e in events} == {"chat"}
    assert first_msg["event_id"] == expected_event_id(
        "chat", "chat", "WEB-20240506-104233", "message", "m-0004"
    )


def test_abandoned_while_queued_naive_times() -> None:
    events = validated(parse_chat(load("chat/transcript_abandoned.json")))
    assert summary(events) == [
        ("offered", "2024-05-06T20:14:55+08:00"),
        ("message", "2024-05-06T20:15:19+08:00"),
        ("queued", "2024-05-06T20:15:20+08:00"),
        ("message", "2024-05-06T20:19:02+08:00"),
        ("abandoned", "2024-05-06T20:19:20+08:00"),
    ]
    assert events[-1]["payload"] == {"wait_seconds": 240.0}
    assert events[3]["text"] == "等了这么久还没人，算了"
    assert "customer_id" not in events[0]


def test_open_bot_only_session_has_only_its_offer() -> None:
    [ev] = validated(parse_chat(load("chat/transcript_bot_only_open.json")))
    assert ev["event_type"] == "offered"
    assert ev["text"] == "5G套餐怎么办理？"
    assert "queue" not in ev


def test_bot_only_session_that_ended_has_zero_talk() -> None:
    doc = orjson.loads(load("chat/transcript_bot_only_open.json"))
    doc["ended_at"] = "2024-05-06T11:31:00+08:00"
    events = validated(parse_chat(orjson.dumps(doc)))
    assert summary(events)[-1] == ("ended", "2024-05-06T11:31:00+08:00")
    assert events[-1]["payload"] == {"talk_seconds": 0.0}
    assert "agent_id" not in events[-1]


def test_growing_transcript_keeps_earlier_event_ids() -> None:
    doc = orjson.loads(load("chat/transcript_answered.json"))
    full = parse_chat(orjson.dumps(doc))
    partial_doc = {**doc, "messages": doc["messages"][:7]}
    del partial_doc["ended_at"]
    partial = parse_chat(orjson.dumps(partial_doc))
    assert {e["event_id"] for e in partial} < {e["event_id"] for e in full}


def test_batch_of_transcripts() -> None:
    batch = b'{"transcripts": [%s, %s]}' % (
        load("chat/transcript_answered.json"),
        load("chat/transcript_abandoned.json"),
    )
    events = validated(parse_chat(batch))
    assert len(events) == 12
    assert len({e["event_id"] for e in events}) == 12


@pytest.mark.parametrize(
    ("fixture", "reason", "loc"),
    [
        ("chat/broken_agent_without_id.json", AdapterReason.missing_field, "messages[1].agent_id"),
        ("chat/broken_bad_timestamp.json", AdapterReason.invalid_value, "messages[0].sent_at"),
        ("chat/broken_unknown_sender.json", AdapterReason.unknown_value, "messages[0].from"),
    ],
)
def test_broken_transcripts(fixture: str, reason: AdapterReason, loc: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_chat(load(fixture))
    assert err.value.reason is reason
    assert err.value.loc == loc


def test_timestamp_error_says_what_to_send() -> None:
    with pytest.raises(AdapterError) as err:
        parse_chat(load("chat/broken_bad_timestamp.json"))
    assert err.value.message == (
        "messages[0].sent_at: '06/05/2024 12:05' is not an ISO 8601 time; "
        "send e.g. '2024-05-01T09:30:00+08:00'"
    )


@pytest.mark.parametrize(
    ("doc", "reason", "loc"),
    [
        (
            {"session_id": "S1", "started_at": "2024-05-06T10:00:00"},
            AdapterReason.missing_field,
            "messages",
        ),
        (
            {"session_id": "S1", "started_at": "2024-05-06T10:00:00", "messages": {}},
            AdapterReason.wrong_type,
            "messages",
        ),
        (
            {"session_id": "S1", "started_at": "2024-05-06T10:00:00", "messages": ["hi"]},
            AdapterReason.not_an_object,
            "messages[0]",
        ),
        (
            {
                "session_id": "S1",
                "started_at": "2024-05-06T10:00:00",
                "ended_at": "2024-05-06T09:00:00",
                "messages": [],
            },
            AdapterReason.invalid_value,
            "",
        ),
        (
            {"session_id": "S1", "started_at": "2024-05-06T10:00:00", "messages": [], "agent": "x"},
            AdapterReason.unknown_field,
            "agent",
        ),
    ],
)
def test_session_errors(doc: dict, reason: AdapterReason, loc: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_chat(orjson.dumps(doc))
    assert err.value.reason is reason
    assert err.value.loc == loc

"""The normalize agent in Faust's test context: wiring only, no broker.

Sends to output topics are captured by patching Topic.send, as Faust's own
testing guide does for agents that forward to other topics.
"""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import orjson

from vocflow.schemas import ContactEvent, DeadLetter
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core.settings import load_settings
from vocflow.streams.worker.app import create_app
from vocflow.streams.worker.web import counter_values

GOOD = orjson.dumps(
    {
        "event_id": "e-1",
        "contact_id": "c-9",
        "channel": "wechat",
        "event_type": "message",
        "occurred_at": "2026-11-23T10:00:00+08:00",
        "text": "流量用完了",
    }
)


def run_agent(values: list[bytes]) -> list[tuple[str, bytes | None, bytes]]:
    settings = load_settings(
        environ={"VOCFLOW_TOPIC_PREFIX": "agenttest.", "VOCFLOW_APP_ID": "agenttest"}
    )
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def fake_send(topic, key=None, value=None, **kwargs):  # type: ignore[no-untyped-def]
        sent.append((topic.get_topic_name(), key, value))

    async def scenario() -> None:
        agent = app.agents["normalize"]
        with patch("faust.topics.Topic.send", new=fake_send):
            async with agent.test_context() as ctx:
                for value in values:
                    await ctx.put(value, key=b"k")

    asyncio.run(scenario())
    return sent


def test_valid_event_goes_to_events_keyed_by_contact_and_to_voc() -> None:
    before = pipeline_stats_in()
    sent = run_agent([GOOD])
    assert [(t, k) for t, k, _ in sent] == [
        ("agenttest.contacts.events", b"c-9"),
        ("agenttest.contacts.voc", b"c-9"),  # no customer id: keyed by contact
    ]
    assert ContactEvent.model_validate_json(sent[0][2]).text == "流量用完了"
    assert sent[1][2] == sent[0][2]
    assert pipeline_stats_in() == before + 1


def test_events_carry_the_masked_text_and_only_voc_the_clear_text() -> None:
    personal = orjson.loads(GOOD) | {"text": "我的号码13800138000上不了网"}
    sent = run_agent([orjson.dumps(personal)])
    assert [t for t, _, _ in sent] == ["agenttest.contacts.events", "agenttest.contacts.voc"]
    assert ContactEvent.model_validate_json(sent[0][2]).text == "我的号码[PHONE]上不了网"
    assert ContactEvent.model_validate_json(sent[1][2]).text == "我的号码13800138000上不了网"


def test_voc_is_keyed_by_customer_and_skips_events_without_text() -> None:
    with_customer = orjson.loads(GOOD) | {"customer_id": "C42"}
    no_text = orjson.loads(GOOD) | {"event_id": "e-2", "text": None}
    sent = run_agent([orjson.dumps(with_customer), orjson.dumps(no_text)])
    assert [(t, k) for t, k, _ in sent] == [
        ("agenttest.contacts.events", b"c-9"),
        ("agenttest.contacts.voc", b"C42"),
        ("agenttest.contacts.events", b"c-9"),
    ]


def test_bad_events_go_to_dlq_and_the_agent_keeps_going() -> None:
    dlq_before = metrics.DLQ.labels("normalize", "bad_json")._value.get()
    sent = run_agent([b"{oops", b"\xff", GOOD])
    assert [t for t, _, _ in sent] == [
        "agenttest.contacts.dlq",
        "agenttest.contacts.dlq",
        "agenttest.contacts.events",
        "agenttest.contacts.voc",
    ]
    first = DeadLetter.model_validate_json(sent[0][2])
    second = DeadLetter.model_validate_json(sent[1][2])
    assert (first.reason.value, second.reason.value) == ("bad_json", "invalid_utf8")
    assert first.original_bytes() == b"{oops"
    assert sent[0][1] == b"k"
    assert first.source.topic == "agenttest.contacts.raw"
    assert metrics.DLQ.labels("normalize", "bad_json")._value.get() == dlq_before + 1


def test_stage_crash_becomes_processing_error() -> None:
    with patch("vocflow.streams.stages.normalize.normalize", side_effect=RuntimeError("boom")):
        sent = run_agent([GOOD])
    letter = DeadLetter.model_validate_json(sent[0][2])
    assert letter.reason.value == "processing_error"
    assert letter.errors[0].msg == "boom"
    assert letter.original_bytes() == GOOD


def pipeline_stats_in() -> int:
    return int(counter_values(metrics.STAGE_IN).get(("normalize",), 0))


def test_static_membership_id_reaches_the_consumer_config() -> None:
    """VOCFLOW_WORKER_INSTANCE_ID is the consumer's group.instance.id; unset, the
    default static name <hostname>-<web port>."""
    plain = load_settings(environ={"VOCFLOW_APP_ID": "agenttest", "VOCFLOW_WEB_PORT": "7002"})
    pinned = load_settings(
        environ={"VOCFLOW_APP_ID": "agenttest", "VOCFLOW_WORKER_INSTANCE_ID": "worker-0"}
    )
    default = create_app(plain).conf.consumer_group_instance_id
    assert default == plain.group_instance_id and default.endswith("-7002")
    assert create_app(pinned).conf.consumer_group_instance_id == "worker-0"

"""The voc agent in Faust's test context: tables, topics and state wiring, no broker."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import orjson
import pytest

from vocflow.schemas import RoutingEnvelope
from vocflow.streams.core.settings import load_settings
from vocflow.streams.worker.app import create_app

pytestmark = pytest.mark.clock


def event(n: int, contact: str, customer: str | None, text: str, hour: int = 9) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "contact_id": contact,
            "customer_id": customer,
            "channel": "chat",
            "event_type": "message",
            "occurred_at": f"2026-11-23T{hour:02d}:00:00+08:00",
            "text": text,
        }
    )


def run_voc(values: list[bytes]) -> list[tuple[str, bytes | None, bytes]]:
    settings = load_settings(
        environ={"VOCFLOW_TOPIC_PREFIX": "voctest.", "VOCFLOW_APP_ID": "voctest"}
    )
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    app.views_loaded.set()
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def fake_send(topic, key=None, value=None, **kwargs):  # type: ignore[no-untyped-def]
        sent.append((topic.get_topic_name(), key, value))

    async def scenario() -> None:
        agent = app.agents["voc"]
        with (
            patch("faust.topics.Topic.send", new=fake_send),
            patch("vocflow.streams.core.admin.ensure_topics"),
        ):
            async with agent.test_context() as ctx:
                for value in [*values, SENTINEL]:
                    key = orjson.loads(value)["customer_id"] or orjson.loads(value)["contact_id"]
                    await ctx.put(value, key=key.encode(), timestamp=1795392000.0 + len(sent))

    asyncio.run(scenario())
    return [record for record in sent if record[1] != b"sentinel"]


# `put` may return before the agent finished that event (a wake-up meant for an earlier
# one); once the agent has taken this last message it has finished all the others. It
# is not an event (dead-lettered, key 'sentinel'); its own records are dropped.
SENTINEL = b'{"contact_id": "sentinel", "customer_id": null}'


def test_routes_once_per_contact_with_masked_text() -> None:
    sent = run_voc(
        [
            event(1, "c1", "C1", "宽带断网了，我的电话13812345678"),
            event(2, "c1", "C1", "还是断网，快点处理"),
        ]
    )
    assert [(t, k) for t, k, _ in sent] == [
        ("voctest.dept.network", b"c1"),
        ("voctest.contacts.routed", b"c1"),
    ]
    envelope = RoutingEnvelope.model_validate_json(sent[0][2])
    assert envelope.text == "宽带断网了，我的电话[PHONE]"
    assert envelope.department == "network"
    assert envelope.repeat_contact is False
    assert b"13812345678" not in sent[0][2] + sent[1][2]


def test_same_customer_same_category_within_window_is_a_repeat() -> None:
    sent = run_voc(
        [
            event(1, "c1", "C7", "宽带断网了", hour=9),
            event(2, "c2", "C7", "宽带又断网了", hour=15),
            event(3, "c3", "C8", "宽带断网了", hour=16),
        ]
    )
    envelopes = [
        RoutingEnvelope.model_validate_json(v) for t, _, v in sent if t == "voctest.contacts.routed"
    ]
    assert [(e.contact_id, e.repeat_contact, e.previous_contact_id) for e in envelopes] == [
        ("c1", False, None),
        ("c2", True, "c1"),
        ("c3", False, None),
    ]
    assert "raise.repeat_contact" in envelopes[1].tags.urgency_rule_id


def test_a_stage_error_goes_to_the_dlq_and_the_agent_continues() -> None:
    sent = run_voc(
        [
            b'{"not": "an event", "customer_id": null, "contact_id": "x"}',
            event(2, "c2", None, "发票怎么开"),
        ]
    )
    assert [t for t, _, _ in sent] == [
        "voctest.contacts.dlq",
        "voctest.dept.billing",
        "voctest.contacts.routed",
    ]

"""The facts agent in Faust's test context: folding, routing annotations,
KPI deltas on the facts topic, and eviction of idle facts."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from faust.types import TP

from vocflow.schemas import DeadLetter
from vocflow.streams.core.settings import load_settings
from vocflow.streams.kpi.contributions import COUNTERS
from vocflow.streams.worker.app import create_app
from vocflow.streams.worker.eviction import partition_of

pytestmark = pytest.mark.clock


def event(n: int, contact: str, event_type: str, day: int, second: int = 0, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "contact_id": contact,
            "channel": "phone",
            "event_type": event_type,
            "occurred_at": f"2026-11-{day:02d}T09:00:{second:02d}+08:00",
            "queue": "voice.billing",
            **extra,
        }
    )


def test_facts_carry_deltas_and_idle_facts_are_evicted_with_tombstones() -> None:
    settings = load_settings(
        environ={
            "VOCFLOW_TOPIC_PREFIX": "factstest.",
            "VOCFLOW_APP_ID": "factstest",
            "VOCFLOW_FACTS_TTL_HOURS": "72",
        }
    )
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    sent: list[tuple[str, bytes | None, bytes]] = []
    tombstones: list[tuple[int, str, Any]] = []

    async def fake_send(topic, key=None, value=None, **kwargs):  # type: ignore[no-untyped-def]
        sent.append((topic.get_topic_name(), key, value))

    facts = app.tables["contact-facts"]
    events_topic = "factstest.contacts.events"
    actives = {TP(events_topic, p) for p in range(settings.partitions)}

    async def scenario() -> int:
        agent = app.agents["facts"]
        with patch("faust.topics.Topic.send", new=fake_send):
            async with agent.test_context() as ctx:
                await ctx.put(event(1, "old", "offered", 16), key=b"old")
                await ctx.put(event(2, "new", "offered", 20), key=b"new")
                await ctx.put(
                    event(3, "new", "answered", 20, 12, payload={"wait_seconds": 12.0}),
                    key=b"new",
                )
        with (
            patch.object(app.assignor, "assigned_actives", return_value=actives),
            patch.object(facts, "send_changelog", side_effect=lambda *a: tombstones.append(a)),
        ):
            return await app.facts.evict_idle()

    evicted = asyncio.run(scenario())
    facts_out = [orjson.loads(v) for t, _k, v in sent if t == "factstest.contacts.facts"]
    assert [(f["contact_id"], f["version"]) for f in facts_out] == [
        ("old", 1),
        ("new", 1),
        ("new", 2),
    ]
    answered = facts_out[2]["kpi_deltas"]
    assert len(answered) == 1
    minute, queue, channel, department, counters = answered[0]
    assert minute == 1_795_136_400_000  # 2026-11-20 09:00 +08:00
    assert (queue, channel, department) == ("voice.billing", "phone", "")
    by_name = dict(zip(COUNTERS, counters, strict=True))
    # offered -> answered: the contact was already offered (and counted in the
    # abandonment base); the answer adds SL and ASA.
    assert {k: v for k, v in by_name.items() if v} == {
        "sl_answered_within": 1,
        "sl_base": 1,
        "answered": 1,
        "wait_ms": 12_000,
    }
    assert "_last_ms" not in facts_out[0]
    # "old" was idle for 4 days of event time (TTL 72 h): evicted, "new" kept.
    assert evicted == 1
    assert tombstones == [(partition_of("old", settings.partitions), "old", None)]
    assert "old" not in facts.data and "new" in facts.data


def test_a_record_the_fold_cannot_read_is_dead_lettered_and_the_agent_goes_on() -> None:
    settings = load_settings(
        environ={"VOCFLOW_TOPIC_PREFIX": "factsdlq.", "VOCFLOW_APP_ID": "factsdlq"}
    )
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def fake_send(topic, key=None, value=None, **kwargs):  # type: ignore[no-untyped-def]
        sent.append((topic.get_topic_name(), key, value))

    async def scenario() -> None:
        with patch("faust.topics.Topic.send", new=fake_send):
            async with app.agents["facts"].test_context() as ctx:
                await ctx.put(b'{"contact_id": 7}', key=b"bad")
                await ctx.put(event(1, "ok", "offered", 20), key=b"ok")

    asyncio.run(scenario())
    assert [(t, k) for t, k, _ in sent] == [
        ("factsdlq.contacts.dlq", b"bad"),
        ("factsdlq.contacts.facts", b"ok"),
    ]
    letter = DeadLetter.model_validate_json(sent[0][2])
    assert (letter.stage, letter.reason.value) == ("facts", "processing_error")
    assert letter.original_bytes() == b'{"contact_id": 7}'
    assert letter.errors[0].type == "ValidationError"


def test_a_record_read_again_after_a_crash_sends_the_stored_fact_again() -> None:
    """Kill -9 between the table's changelog write and the send to contacts.facts:
    the restarted worker restores the fact from the changelog and reads the record
    again (its offset was not committed). Folding it changes nothing, yet the fact
    never left: it must be sent again. A true duplicate (a later offset) is not."""
    settings = load_settings(
        environ={"VOCFLOW_TOPIC_PREFIX": "factsreplay.", "VOCFLOW_APP_ID": "factsreplay"}
    )
    app = create_app(settings)
    app.finalize()
    app.flow_control.resume()
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def fake_send(topic, key=None, value=None, **kwargs):  # type: ignore[no-untyped-def]
        sent.append((topic.get_topic_name(), key, value))

    answered = event(2, "c1", "answered", 20, 12, payload={"wait_seconds": 12.0})

    async def scenario() -> None:
        with patch("faust.topics.Topic.send", new=fake_send):
            async with app.agents["facts"].test_context() as ctx:
                await ctx.put(event(1, "c1", "offered", 20), key=b"c1")  # offset 0
                await ctx.put(answered, key=b"c1")  # offset 1
                ctx.sent_offset = 1
                await ctx.put(answered, key=b"c1")  # offset 1 again: a replay
                await ctx.put(answered, key=b"c1")  # offset 2: the source sent it twice

    asyncio.run(scenario())
    facts_out = [orjson.loads(v) for t, _k, v in sent if t == "factsreplay.contacts.facts"]
    assert [(f["version"], f["kpi_deltas"] != []) for f in facts_out] == [
        (1, True),
        (2, True),
        (2, False),
    ]
    assert facts_out[2] == {**facts_out[1], "kpi_deltas": []}
    assert "_applied" not in facts_out[0]
    assert app.tables["contact-facts"]["c1"]["_applied"] == [1, -1]

"""The voc loop without a broker: a fake transactional producer records what each
transaction holds; the loop's batch step is driven directly.

What must hold: one transaction per batch holding the envelopes, the dead letters,
the state changes and the consumed offset; nothing counted or remembered from a
transaction that failed; a state restored from the changelog routes as the
original did (no second envelope, repeats still found)."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import orjson
import pytest
from aiokafka import TopicPartition

from tests.agents.txfakes import FakeProducer, RoutedProducer, records
from vocflow.schemas import RoutingEnvelope
from vocflow.streams.core.settings import load_settings
from vocflow.streams.stages.voc_state import VocState
from vocflow.streams.worker.app import create_app
from vocflow.streams.worker.txloop import _Partition
from vocflow.streams.worker.voc_loop import VocLoop

pytestmark = pytest.mark.clock
TP = TopicPartition("voctest.contacts.voc", 0)


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


def make_loop(producer: FakeProducer, state: VocState | None = None) -> VocLoop:
    settings = load_settings(
        environ={"VOCFLOW_TOPIC_PREFIX": "voctest.", "VOCFLOW_APP_ID": "voctest"}
    )
    app = create_app(settings)
    loop = VocLoop(app, app.topics_)
    loop.early_producer = RoutedProducer()  # type: ignore[assignment]
    loop.partitions[0] = _Partition(0, producer, state or VocState(loop.window))  # type: ignore[arg-type]
    return loop


def process(loop: VocLoop, values: list[bytes], first_offset: int = 0) -> None:
    with patch("vocflow.streams.core.admin.ensure_topics"):
        asyncio.run(loop._transact(TP, records(TP, values, first_offset)))


def test_one_batch_is_one_transaction_with_envelopes_state_and_offset() -> None:
    producer = FakeProducer()
    loop = make_loop(producer)
    process(loop, [event(1, "c1", "C1", "宽带断网了，我的电话13812345678"),
                   event(2, "c1", "C1", "还是断网，快点处理")])  # fmt: skip
    assert len(producer.committed) == 1
    sent, offsets = producer.committed[0]
    assert offsets == {TP: 2, "group": "voctest-voc"}
    assert [(t, k) for t, k, _ in sent] == [
        ("voctest.dept.network", b"c1"),
        ("voctest.contacts.voc-state", b"i|C1|fault"),
        ("voctest.contacts.voc-state", b"r|c1"),
    ]
    # The audit copy goes outside the transaction, delivered before it commits.
    routed = loop.early_producer.sent  # type: ignore[union-attr]
    assert [(t, k, v) for t, k, v in routed] == [("voctest.contacts.routed", b"c1", sent[0][2])]
    envelope = RoutingEnvelope.model_validate_json(sent[0][2])  # type: ignore[arg-type]
    assert envelope.text == "宽带断网了，我的电话[PHONE]"
    assert envelope.department == "network"
    assert all(b"13812345678" not in (v or b"") for _, _, v in sent)


def test_same_customer_same_category_within_window_is_a_repeat() -> None:
    producer = FakeProducer()
    loop = make_loop(producer)
    process(loop, [event(1, "c1", "C7", "宽带断网了", hour=9),
                   event(2, "c2", "C7", "宽带又断网了", hour=15),
                   event(3, "c3", "C8", "宽带断网了", hour=16)])  # fmt: skip
    envelopes = sorted(  # one batch a partition: the contacts' order is not kept across them
        (
            RoutingEnvelope.model_validate_json(v)  # type: ignore[arg-type]
            for t, _, v in loop.early_producer.sent  # type: ignore[union-attr]
        ),
        key=lambda e: e.contact_id,
    )
    assert [(e.contact_id, e.repeat_contact, e.previous_contact_id) for e in envelopes] == [
        ("c1", False, None),
        ("c2", True, "c1"),
        ("c3", False, None),
    ]
    assert "raise.repeat_contact" in envelopes[1].tags.urgency_rule_id


def test_a_stage_error_is_dead_lettered_in_the_same_transaction() -> None:
    producer = FakeProducer()
    loop = make_loop(producer)
    process(loop, [b'{"not": "an event"}', event(2, "c2", None, "发票怎么开")], first_offset=40)
    sent, offsets = producer.committed[0]
    assert [t for t, _, _ in sent] == [
        "voctest.contacts.dlq",
        "voctest.dept.billing",
        "voctest.contacts.voc-state",
    ]
    letter = orjson.loads(sent[0][2])  # type: ignore[arg-type]
    assert (letter["stage"], letter["reason"], letter["source"]["offset"]) == (
        "route",
        "processing_error",
        40,
    )
    assert offsets[TP] == 42


def test_a_failed_transaction_reads_the_batch_again_from_a_restored_state() -> None:
    producer = FakeProducer(fail=True)
    loop = make_loop(producer)
    resets: list[int] = []

    async def reset(partition: int) -> None:
        resets.append(partition)

    with patch.object(loop, "_reset", new=reset):
        process(loop, [event(1, "c1", "C1", "宽带断网了")])
    assert producer.committed == []
    assert resets == [0]


def test_a_state_restored_from_the_changelog_routes_as_the_original_would() -> None:
    first = FakeProducer()
    loop = make_loop(first)
    process(loop, [event(1, "c1", "C7", "宽带断网了", hour=9)])
    changelog = [(k, v) for t, k, v in first.committed[0][0] if t.endswith("voc-state")]
    # A new owner of the partition (a restarted worker) restores and goes on.
    restored = VocState(loop.window)
    restored.restore(changelog)  # type: ignore[arg-type]
    second = FakeProducer()
    loop2 = make_loop(second, restored)
    process(loop2, [event(2, "c1", "C7", "还是断网", hour=10),
                    event(3, "c2", "C7", "宽带又断网了", hour=15)], first_offset=1)  # fmt: skip
    routed = [
        RoutingEnvelope.model_validate_json(v)  # type: ignore[arg-type]
        for t, _, v in loop2.early_producer.sent  # type: ignore[union-attr]
    ]
    assert [(e.contact_id, e.repeat_contact, e.previous_contact_id) for e in routed] == [
        ("c2", True, "c1")
    ]

"""The normalize loop without a broker: one transaction per batch holding the
canonical events (masked), the clear voc copies, the dead letters and the offset."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import orjson
import pytest
from aiokafka import TopicPartition

from tests.agents.txfakes import FakeProducer, by_topic, records
from vocflow.schemas import ContactEvent, DeadLetter
from vocflow.streams.core.settings import load_settings
from vocflow.streams.worker.app import create_app
from vocflow.streams.worker.normalize_loop import NormalizeLoop
from vocflow.streams.worker.txloop import _Partition

pytestmark = pytest.mark.clock
TP = TopicPartition("normtest.contacts.raw", 3)

GOOD = {
    "event_id": "e-1",
    "contact_id": "c-9",
    "channel": "wechat",
    "event_type": "message",
    "occurred_at": "2026-11-23T10:00:00+08:00",
    "text": "流量用完了",
}


def run(values: list[bytes], first_offset: int = 0) -> FakeProducer:
    settings = load_settings(
        environ={"VOCFLOW_TOPIC_PREFIX": "normtest.", "VOCFLOW_APP_ID": "normtest"}
    )
    app = create_app(settings)
    loop = NormalizeLoop(app, app.topics_)
    producer = FakeProducer()
    loop.partitions[TP.partition] = _Partition(TP.partition, producer, None)  # type: ignore[arg-type]
    asyncio.run(loop._transact(TP, records(TP, values, first_offset)))
    return producer


def test_events_masked_voc_clear_keyed_by_customer_offsets_in_the_transaction() -> None:
    personal = GOOD | {"customer_id": "C42", "text": "我的号码13800138000上不了网"}
    no_text = GOOD | {"event_id": "e-2", "text": None}
    producer = run([orjson.dumps(GOOD), orjson.dumps(personal), orjson.dumps(no_text)], 10)
    ((sent, offsets),) = producer.committed
    assert offsets == {TP: 13, "group": "normtest-normalize"}
    topics = by_topic(sent)
    assert {t: [k for k, _ in kvs] for t, kvs in topics.items()} == {
        "normtest.contacts.events": [b"c-9", b"c-9", b"c-9"],
        # keyed by customer; the first has no customer id: keyed by contact
        "normtest.contacts.voc": [b"c-9", b"C42"],  # the third has no text: not for voc
    }
    texts = {
        t: [ContactEvent.model_validate_json(v).text for _, v in kvs]  # type: ignore[arg-type]
        for t, kvs in topics.items()
    }
    assert texts == {
        "normtest.contacts.events": ["流量用完了", "我的号码[PHONE]上不了网", None],
        "normtest.contacts.voc": ["流量用完了", "我的号码13800138000上不了网"],
    }


def test_bad_records_are_dead_lettered_in_the_same_transaction() -> None:
    producer = run([b"{oops", b"\xff", orjson.dumps(GOOD)], 40)
    ((sent, offsets),) = producer.committed
    assert [t for t, _, _ in sent] == [
        "normtest.contacts.dlq",
        "normtest.contacts.dlq",
        "normtest.contacts.events",
        "normtest.contacts.voc",
    ]
    first = DeadLetter.model_validate_json(sent[0][2])  # type: ignore[arg-type]
    second = DeadLetter.model_validate_json(sent[1][2])  # type: ignore[arg-type]
    assert (first.reason.value, second.reason.value) == ("bad_json", "invalid_utf8")
    assert first.original_bytes() == b"{oops"
    assert (first.source.topic, first.source.partition, first.source.offset) == (TP.topic, 3, 40)
    assert sent[0][1] == b"k"
    assert offsets[TP] == 43


def test_a_stage_crash_becomes_a_processing_error_dead_letter() -> None:
    with patch("vocflow.streams.stages.normalize.normalize", side_effect=RuntimeError("boom")):
        producer = run([orjson.dumps(GOOD)])
    ((sent, _),) = producer.committed
    letter = DeadLetter.model_validate_json(sent[0][2])  # type: ignore[arg-type]
    assert (letter.stage, letter.reason.value, letter.errors[0].msg) == (
        "normalize",
        "processing_error",
        "boom",
    )
    assert letter.original_bytes() == orjson.dumps(GOOD)

"""The facts loop without a broker: folding, routing annotations and KPI deltas;
one transaction per batch with the new facts, the state changes and the offset;
a state restored from the changelog goes on as the original would."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from tests.agents.txfakes import FakeProducer, records
from vocflow.schemas import ContactEvent, DeadLetter
from vocflow.streams.core.settings import DEFAULT_RULES_FILE, load_settings
from vocflow.streams.kpi.contributions import COUNTERS
from vocflow.streams.stages.facts_state import FactsState
from vocflow.streams.stages.rules import load_rules
from vocflow.streams.stages.voc import analyse_and_route
from vocflow.streams.worker.app import create_app
from vocflow.streams.worker.facts_loop import FactsLoop
from vocflow.streams.worker.txloop import _Partition

pytestmark = pytest.mark.clock
EVENTS = TopicPartition("factstest.contacts.events", 2)
ROUTED = TopicPartition("factstest.contacts.routed", 2)


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


def routed(contact: str, text: str) -> bytes:
    """The envelope the voc stage makes of `contact`'s first text."""
    first = ContactEvent.model_validate_json(event(1, contact, "offered", 20, text=text))
    result = analyse_and_route(
        first,
        {},
        load_rules(DEFAULT_RULES_FILE),
        datetime(2026, 11, 20, 1, 0, 1, tzinfo=UTC),
        last_issue=lambda key: None,
        already_routed=False,
        window=timedelta(hours=72),
    )
    assert result.envelope is not None
    return result.envelope.model_dump_json().encode()


BILLING = "话费扣多了，乱扣费"
NETWORK = "宽带断网了，一直连不上"


def make_loop(
    state: FactsState | None = None, ttl_hours: str = "72"
) -> tuple[FactsLoop, FakeProducer]:
    settings = load_settings(
        environ={
            "VOCFLOW_TOPIC_PREFIX": "factstest.",
            "VOCFLOW_APP_ID": "factstest",
            "VOCFLOW_FACTS_TTL_HOURS": ttl_hours,
        }
    )
    app = create_app(settings)
    loop = FactsLoop(app, app.topics_)
    producer = FakeProducer()
    loop.partitions[2] = _Partition(2, producer, state or loop.new_state(2))  # type: ignore[arg-type]
    return loop, producer


def transact(loop: FactsLoop, tp: TopicPartition, values: list[bytes], first: int = 0) -> None:
    asyncio.run(loop._transact(tp, records(tp, values, first)))


def test_facts_carry_deltas_and_the_state_changes_commit_with_them() -> None:
    loop, producer = make_loop()
    transact(loop, EVENTS, [event(1, "new", "offered", 20)])
    transact(loop, EVENTS, [
        event(2, "new", "answered", 20, 12, payload={"wait_seconds": 12.0}),
        event(2, "new", "answered", 20, 12, payload={"wait_seconds": 12.0}),  # duplicate
    ], first=1)  # fmt: skip
    sent, offsets = producer.committed[1]
    assert offsets == {EVENTS: 3, "group": "factstest-facts"}
    assert [(t, k) for t, k, _ in sent] == [
        ("factstest.contacts.facts", b"new"),
        ("factstest.contacts.facts-state", b"new"),  # one change per contact and batch
    ]
    fact = orjson.loads(sent[0][2])  # type: ignore[arg-type]
    assert fact["version"] == 2
    assert orjson.loads(sent[1][2])["version"] == 2  # type: ignore[arg-type]
    ((minute, queue, channel, department, counters),) = fact["kpi_deltas"]
    assert minute == 1_795_136_400_000  # 2026-11-20 09:00 +08:00
    assert (queue, channel, department) == ("voice.billing", "phone", "")
    # offered -> answered: the contact was already offered; the answer adds SL and ASA.
    assert {k: v for k, v in zip(COUNTERS, counters, strict=True) if v} == {
        "sl_answered_within": 1,
        "sl_base": 1,
        "answered": 1,
        "wait_ms": 12_000,
    }


def _cells(message: dict[str, Any]) -> Counter[tuple[Any, ...]]:
    """A fact message's KPI deltas as (minute, queue, channel, department, counter) -> n."""
    out: Counter[tuple[Any, ...]] = Counter()
    for *key, counters in message["kpi_deltas"]:
        for name, n in zip(COUNTERS, counters, strict=True):
            out[(*key, name)] += n
    return out


def test_a_batch_sends_each_contact_once_with_the_deltas_of_all_its_changes() -> None:
    values = [
        event(1, "a", "offered", 20),
        event(2, "b", "offered", 20, 5),
        event(3, "a", "answered", 20, 12, payload={"wait_seconds": 12.0}),
        event(4, "a", "ended", 20, 50, payload={"talk_seconds": 38.0}),
    ]
    one, in_one = make_loop()
    transact(one, EVENTS, values)
    ((sent, _),) = in_one.committed
    facts = [orjson.loads(v) for t, _, v in sent if t.endswith("contacts.facts")]  # type: ignore[arg-type]
    assert [(f["contact_id"], f["version"]) for f in facts] == [("a", 3), ("b", 1)]
    # The oracle: the same records one a batch, every version sent, deltas summed.
    each, in_each = make_loop()
    for n, value in enumerate(values):
        transact(each, EVENTS, [value], first=n)
    versions = [
        orjson.loads(v)  # type: ignore[arg-type]
        for batch, _ in in_each.committed
        for t, k, v in batch
        if t.endswith("contacts.facts") and k == b"a"
    ]
    assert [f["version"] for f in versions] == [1, 2, 3]
    summed: Counter[tuple[Any, ...]] = Counter()
    for f in versions:
        summed.update(_cells(f))  # update adds, negative counts too
    nonzero = {k: n for k, n in summed.items() if n}
    assert {k: n for k, n in _cells(facts[0]).items() if n} == nonzero
    assert len(nonzero) >= 4  # offered, answered, SL, handle time: not a vacuous match
    assert facts[0] | {"kpi_deltas": None} == versions[-1] | {"kpi_deltas": None}


def test_the_routing_decision_annotates_the_fact_of_the_same_partition() -> None:
    loop, producer = make_loop()
    transact(loop, EVENTS, [event(1, "c1", "offered", 20)])
    transact(loop, ROUTED, [routed("c1", BILLING), routed("c1", BILLING)], first=7)
    sent, offsets = producer.committed[1]
    assert offsets == {ROUTED: 9, "group": "factstest-facts"}
    fact = orjson.loads(sent[0][2])  # type: ignore[arg-type]
    assert (fact["version"], fact["department"], fact["category"]) == (
        2,
        "billing",
        "charge_dispute",
    )
    assert [t for t, _, _ in sent] == ["factstest.contacts.facts", "factstest.contacts.facts-state"]


def test_a_state_restored_from_the_changelog_goes_on_as_the_original() -> None:
    loop, first = make_loop()
    transact(loop, EVENTS, [event(1, "c1", "offered", 20)])
    transact(loop, ROUTED, [routed("c1", NETWORK)])
    changelog = [
        (k, v) for (batch, _) in first.committed for t, k, v in batch if t.endswith("state")
    ]
    restored = FactsState(loop.ttl_ms)
    restored.restore(changelog)  # type: ignore[arg-type]
    again, second = make_loop(restored)
    transact(again, EVENTS, [
        event(1, "c1", "offered", 20),  # read again after a crash: already folded
        event(2, "c1", "answered", 20, 30, payload={"wait_seconds": 30.0}),
    ])  # fmt: skip
    ((sent, _),) = second.committed
    (fact,) = [orjson.loads(v) for t, _, v in sent if t.endswith("contacts.facts")]  # type: ignore[arg-type]
    assert (fact["version"], fact["department"], fact["answered"][2]) == (3, "network", 30_000)


def test_a_record_the_stage_cannot_read_is_dead_lettered_in_the_transaction() -> None:
    loop, producer = make_loop()
    transact(loop, EVENTS, [b'{"contact_id": 7}', event(1, "ok", "offered", 20)], first=5)
    ((sent, offsets),) = producer.committed
    assert [(t, k) for t, k, _ in sent] == [
        ("factstest.contacts.dlq", b"k"),
        ("factstest.contacts.facts", b"ok"),
        ("factstest.contacts.facts-state", b"ok"),
    ]
    letter = DeadLetter.model_validate_json(sent[0][2])  # type: ignore[arg-type]
    assert (letter.stage, letter.reason.value, letter.source.offset) == (
        "facts",
        "processing_error",
        5,
    )
    assert letter.errors[0].type == "ValidationError"
    assert offsets[EVENTS] == 7


def test_idle_facts_are_forgotten_with_tombstones_by_event_time() -> None:
    loop, producer = make_loop(ttl_hours="72")
    transact(loop, EVENTS, [event(1, "old", "offered", 16), event(2, "new", "offered", 20)])
    sent, _ = producer.committed[0]
    state = loop.partitions[2].state
    assert sorted(state.facts) == ["new"]
    # "old" was idle for 4 days of event time (TTL 72 h): its state entry is a tombstone.
    assert [(k, v) for t, k, v in sent if t.endswith("state") and v is None] == [(b"old", None)]

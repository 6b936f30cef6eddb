"""ClickHouseSink under faults: poison rows are quarantined while the rest flows, an
outage pauses consumption and is waited out, on the real embedded ClickHouse (chdb).

The sink's own loop (`run`) and `flush` are driven with a fake consumer and producer
(no Kafka): the consumer serves fixed records, honours pause/resume/seek and records
commits; the producer keeps what was sent. A fake clock, advanced by every poll that
returns nothing, makes the backoff and the blocked gauge exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from clickhouse_connect.driver import exceptions as ch
from prometheus_client import REGISTRY

from vocflow.schemas import DeadLetter, Reason
from vocflow.sinks.clickhouse import kafka_sink
from vocflow.sinks.clickhouse.kafka_sink import ClickHouseSink, error_text, refuses_data
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import AGENT_EVENTS, CONTACT_EVENTS, CONTACT_FACTS, Row
from vocflow.streams.core.settings import Settings

PREFIX = "t."
EVENTS, FACTS, AGENTS, DLQ = (
    f"{PREFIX}contacts.events",
    f"{PREFIX}contacts.facts",
    f"{PREFIX}agents.events",
    f"{PREFIX}contacts.dlq",
)
NOW_MS = int(time.time() * 1000)  # recent, so no table TTL touches the rows
NOW_ISO = datetime.fromtimestamp(NOW_MS / 1000, UTC).isoformat()


# ---- records -----------------------------------------------------------------


def event(n: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "contact_id": f"c{n}",
            "channel": "phone",
            "event_type": "answered",
            "occurred_at": NOW_ISO,
            "queue": "billing",
            "payload": {"wait_seconds": 3},
        }
    )


def fact(n: int, **extra: Any) -> bytes:
    return orjson.dumps(
        {"contact_id": f"f{n}", "version": 1, "first_ms": NOW_MS, "offered_ms": NOW_MS, **extra}
    )


def agent_event(n: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"a{n}",
            "agent_id": f"agent{n % 7}",
            "state": "ready",
            "occurred_at": NOW_ISO,
        }
    )


def record(topic: str, partition: int, offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=NOW_MS + offset,
        timestamp_type=0,
        key=f"k{partition}-{offset}".encode(),
        value=value,
        checksum=None,
        serialized_key_size=8,
        serialized_value_size=len(value),
        headers=(),
    )


def log_of(topic: str, partitions: Sequence[Sequence[bytes]]) -> dict[TopicPartition, list]:
    return {
        TopicPartition(topic, p): [record(topic, p, o, v) for o, v in enumerate(values)]
        for p, values in enumerate(partitions)
    }


# ---- fakes -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """Serves `logs` from offset 0, honours pause/resume/seek, records commits.

    A poll that returns nothing advances the clock by its timeout (it waited that
    long). Once every record is committed it stops the sink's loop.
    """

    def __init__(self, logs: dict[TopicPartition, list], clock: Clock) -> None:
        self.logs = logs
        self.clock = clock
        self.assigned = set(logs)
        self.positions = dict.fromkeys(logs, 0)
        self.paused_tps: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.committed: dict[TopicPartition, int] = {}
        self.polls_all_paused = 0
        self.returned_while_paused = 0
        self.sink: ClickHouseSink | None = None
        self.on_poll: Callable[[FakeConsumer], None] | None = None
        self.polls = 0
        self.reassigning = False  # a rebalance runs: like aiokafka, polls wait for it

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        await asyncio.sleep(0)
        self.polls += 1
        assert self.polls < 10_000, "the sink loop does not finish"
        if self.on_poll is not None:
            self.on_poll(self)
        while self.reassigning:
            await asyncio.sleep(0.001)
        if self.assigned and self.paused_tps >= self.assigned:
            self.polls_all_paused += 1
        budget = max_records or 10**9
        out: dict[TopicPartition, list] = {}
        for tp in sorted(self.assigned):
            if tp in self.paused_tps or budget <= 0:
                continue
            got = self.logs[tp][self.positions[tp] : self.positions[tp] + budget]
            if got:
                out[tp] = got
                self.positions[tp] += len(got)
                budget -= len(got)
        if not out:
            self.clock.now += timeout_ms / 1000
            done = all(self.committed.get(tp, 0) == len(log) for tp, log in self.logs.items())
            if done and self.sink is not None:
                self.sink._stopping.set()
        return out

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_tps |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps -= set(tps)

    def paused(self) -> set[TopicPartition]:
        return self.paused_tps & self.assigned

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return None  # never fetched: never caught up, so batches flush by size and age

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        self.committed.update(offsets)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        self.sent.append((topic, value, key))
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


# What the contact_facts hook writes before each facts insert (LatestFactDeltas): passed
# straight through, neither failed nor logged; tests/unit/sinks/test_exact_kpis.py
# puts that bookkeeping through crashes.
BOOKKEEPING = frozenset({"kpi_deltas", "kpi_accounted"})


class Store:
    """The real store, with the first `fail` inserts failing as `error()`, and a log of
    every insert attempt: (table, rows, token, blocked gauge when it started, outcome).
    Inserts into BOOKKEEPING tables pass straight through."""

    def __init__(
        self, real: ClickHouseStore, fail: int = 0, error: Callable[[], Exception] | None = None
    ) -> None:
        self.real = real
        self.database = real.database
        self.dsn = real.dsn
        self.lock = real.lock
        self.fail = fail
        self.error = error or (lambda: ch.OperationalError("Connection refused"))
        self.attempts: list[tuple[str, int, str, float, str]] = []

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Row], token: str) -> None:
        if table in BOOKKEEPING:
            self.real.insert(table, columns, rows, token)
            return
        gauge = REGISTRY.get_sample_value("vocflow_sink_blocked_seconds")
        assert gauge is not None
        if self.fail > 0:
            self.fail -= 1
            self.attempts.append((table, len(rows), token, gauge, "unavailable"))
            raise self.error()
        try:
            self.real.insert(table, columns, rows, token)
        except Exception:
            self.attempts.append((table, len(rows), token, gauge, "refused"))
            raise
        self.attempts.append((table, len(rows), token, gauge, "ok"))

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.real.query(sql, parameters)

    def close(self) -> None:
        pass  # the session shares one chdb engine


# ---- harness -----------------------------------------------------------------


def make_sink(
    store: Store, logs: dict[TopicPartition, list], batch_rows: int, tables: Iterable[Any]
) -> tuple[ClickHouseSink, FakeConsumer, FakeProducer, Clock]:
    clock = Clock()
    settings = Settings(
        topic_prefix=PREFIX,
        clickhouse_database=store.database,
        sink_batch_rows=batch_rows,
        sink_flush_seconds=1.0,
    )
    sink = ClickHouseSink(settings, tuple(tables), store=store, clock=clock)  # type: ignore[arg-type]
    consumer, producer = FakeConsumer(logs, clock), FakeProducer()
    consumer.sink = sink
    sink._consumer, sink._producer = consumer, producer  # type: ignore[assignment]
    return sink, consumer, producer, clock


async def drive(sink: ClickHouseSink) -> None:
    """The sink's own loop until every record is committed, then a last flush."""
    await asyncio.wait_for(sink.run(), timeout=120)
    await sink.flush()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counts(store: ClickHouseStore, table: str, key: str) -> tuple[int, int]:
    """(rows, distinct keys) without FINAL: equal when nothing was stored twice."""
    return store.query(f"SELECT count(), uniqExact({key}) FROM {store.database}.{table}")[0]


def bisection_inserts(n: int, bad: set[int]) -> int:
    """Inserts the sink's bisection needs for n rows with these refused indexes."""

    def go(lo: int, hi: int) -> int:
        if not bad & set(range(lo, hi)) or hi - lo == 1:
            return 1
        mid = (lo + hi) // 2
        return 1 + go(lo, mid) + go(mid, hi)

    return go(0, n)


def letters(producer: FakeProducer) -> list[DeadLetter]:
    assert {topic for topic, _, _ in producer.sent} <= {DLQ}
    return [DeadLetter.model_validate_json(value) for _, value, _ in producer.sent]


# ---- poison rows -------------------------------------------------------------


def test_one_poison_row_among_1000_is_quarantined_and_the_rest_stored_once(
    store: ClickHouseStore,
) -> None:
    poison = fact(999, transfers=70_000)  # UInt16 column: ClickHouse cannot take it
    facts_p1 = [fact(n) for n in range(200, 323)] + [poison] + [fact(n) for n in range(323, 400)]
    logs = {
        **log_of(EVENTS, [[event(n) for n in range(300)], [event(n) for n in range(300, 600)]]),
        **log_of(FACTS, [[fact(n) for n in range(200)], facts_p1]),
    }
    flaky = Store(store)
    sink, consumer, producer, _ = make_sink(flaky, logs, 5_000, [CONTACT_EVENTS, CONTACT_FACTS])
    before = {
        "q_facts": sample("vocflow_sink_quarantined_total", table="contact_facts"),
        "q_events": sample("vocflow_sink_quarantined_total", table="contact_events"),
        "fail": sample("vocflow_sink_failures_total", table="contact_facts"),
        "rows": sample("vocflow_sink_rows_total", table="contact_facts"),
    }

    asyncio.run(drive(sink))

    # exactly the poison row is quarantined, with its reason and original bytes
    (letter,) = letters(producer)
    assert letter.stage == "sink" and letter.reason is Reason.processing_error
    assert letter.original_bytes() == poison and not letter.truncated
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (FACTS, 1, 123)
    assert letter.source.key == "k1-123" and letter.source.timestamp_ms == NOW_MS + 123
    assert [(e.loc, e.type) for e in letter.errors] == [("", "sink_refused")]
    assert letter.errors[0].msg == (
        "DataError: Unable to create native array for column `transfers`: error "
        "(error: ushort format requires 0 <= number <= 65535)"
    )
    assert producer.sent[0][2] == b"k1-123"  # keyed like the original record
    assert sample("vocflow_sink_quarantined_total", table="contact_facts") - before["q_facts"] == 1
    assert sample("vocflow_sink_quarantined_total", table="contact_events") == before["q_events"]
    assert sample("vocflow_sink_failures_total", table="contact_facts") == before["fail"]
    assert sample("vocflow_sink_rows_total", table="contact_facts") - before["rows"] == 400
    # every other row is stored exactly once (no FINAL needed)
    assert counts(store, "contact_events", "event_id") == (600, 600)
    assert counts(store, "contact_facts", "contact_id") == (400, 400)
    db = store.database
    assert store.query(f"SELECT count() FROM {db}.contact_facts WHERE contact_id = 'f999'") == [
        (0,)
    ]
    # offsets committed past the poison row, in one commit
    assert consumer.commits == [
        {
            TopicPartition(EVENTS, 0): 300,
            TopicPartition(EVENTS, 1): 300,
            TopicPartition(FACTS, 0): 200,
            TopicPartition(FACTS, 1): 201,
        }
    ]
    # the cost: one insert for the events; 1 + 2 x depth for the 401 facts (poison at row 323)
    by_table = {
        t: [a for a in flaky.attempts if a[0] == t] for t in ("contact_events", "contact_facts")
    }
    assert [(a[1], a[4]) for a in by_table["contact_events"]] == [(600, "ok")]
    facts_tries = by_table["contact_facts"]
    assert len(facts_tries) == bisection_inserts(401, {323}) == 1 + 2 * math.ceil(math.log2(401))
    assert len(facts_tries) == 19
    assert sum(a[1] for a in facts_tries if a[4] == "ok") == 400
    refused = [a[1] for a in facts_tries if a[4] == "refused"]
    assert refused == [401, 201, 101, 50, 25, 13, 7, 4, 2, 1]
    assert len({a[2] for a in facts_tries}) == 19  # a token per part, all different
    assert all(a[3] == 0.0 for a in flaky.attempts)  # a refusal never blocks


def test_a_before_insert_hook_that_raises_on_one_row_quarantines_only_that_row(
    store: ClickHouseStore,
) -> None:
    team = AGENT_EVENTS.columns.index("team")

    def picky(_store: Any, rows: list[Row], _settings: Any = None, /) -> list[Row]:
        if any(row[team] == "poison" for row in rows):
            raise KeyError("no KPI slot for team poison")
        return rows

    agents = dataclasses.replace(AGENT_EVENTS, before_insert=picky)
    poison = orjson.dumps({**orjson.loads(agent_event(50)), "event_id": "a-x", "team": "poison"})
    logs = {
        **log_of(EVENTS, [[event(n) for n in range(500)]]),
        **log_of(
            AGENTS,
            [
                [agent_event(n) for n in range(50)]
                + [poison]
                + [agent_event(n) for n in range(51, 100)]
            ],
        ),
    }
    flaky = Store(store)
    sink, consumer, producer, _ = make_sink(flaky, logs, 5_000, [CONTACT_EVENTS, agents])

    asyncio.run(drive(sink))

    (letter,) = letters(producer)
    assert letter.original_bytes() == poison
    assert (letter.source.topic, letter.source.offset) == (AGENTS, 50)
    assert letter.errors[0].msg == "KeyError: '…'"  # quoted text is blanked: never echo input
    assert counts(store, "contact_events", "event_id") == (500, 500)
    assert counts(store, "agent_events", "event_id") == (99, 99)
    assert consumer.committed == {TopicPartition(EVENTS, 0): 500, TopicPartition(AGENTS, 0): 100}
    agent_tries = [a for a in flaky.attempts if a[0] == "agent_events"]
    # the hook refuses before the store is asked: only the good parts reach insert()
    assert [a[1] for a in agent_tries] == [50, 2, 3, 6, 13, 25]
    assert sum(a[1] for a in agent_tries) == 99


def test_a_builder_that_raises_quarantines_the_record_before_the_batch_is_written(
    store: ClickHouseStore,
) -> None:
    def build(value: bytes, partition: int, offset: int) -> Any:
        if value == b"boom":
            raise ZeroDivisionError("division by zero")
        return CONTACT_EVENTS.build(value, partition, offset)

    events = dataclasses.replace(CONTACT_EVENTS, build=build)
    logs = log_of(EVENTS, [[event(0), b"boom", event(2)]])
    sink, consumer, producer, _ = make_sink(Store(store), logs, 5_000, [events])

    asyncio.run(drive(sink))

    (letter,) = letters(producer)
    assert letter.original_bytes() == b"boom" and letter.source.offset == 1
    assert letter.errors[0].msg == "ZeroDivisionError: division by zero"
    assert counts(store, "contact_events", "event_id") == (2, 2)
    assert consumer.committed == {TopicPartition(EVENTS, 0): 3}


def test_a_refusal_that_does_not_repeat_stores_everything_and_quarantines_nothing(
    store: ClickHouseStore,
) -> None:
    """The whole batch fails with a data error code once; both halves then go in: no
    row is refused after bisection, so nothing is quarantined and nothing stored twice."""
    logs = log_of(EVENTS, [[event(n) for n in range(100)]])
    flaky = Store(
        store,
        fail=1,
        error=lambda: ch.DatabaseError("Code: 27. DB::Exception: Cannot parse input", code=27),
    )
    sink, consumer, producer, _ = make_sink(flaky, logs, 5_000, [CONTACT_EVENTS])

    asyncio.run(drive(sink))

    assert producer.sent == []
    assert [(a[1], a[4]) for a in flaky.attempts] == [(100, "unavailable"), (50, "ok"), (50, "ok")]
    assert counts(store, "contact_events", "event_id") == (100, 100)
    assert consumer.committed == {TopicPartition(EVENTS, 0): 100}


def test_an_outage_midway_through_a_bisection_resumes_it_without_writing_a_part_twice(
    store: ClickHouseStore,
) -> None:
    poison = fact(999, csat=300)  # Nullable(UInt8)
    logs = log_of(
        FACTS, [[fact(n) for n in range(30)] + [poison] + [fact(n) for n in range(30, 64)]]
    )
    flaky = Store(store)
    sink, consumer, producer, clock = make_sink(flaky, logs, 5_000, [CONTACT_FACTS])
    real_insert = flaky.insert
    calls = 0

    def insert(table: str, columns: Sequence[str], rows: Sequence[Row], token: str) -> None:
        nonlocal calls
        if table in BOOKKEEPING:
            real_insert(table, columns, rows, token)
            return
        calls += 1
        if calls in (3, 4):  # the server goes away during the bisection, twice
            flaky.attempts.append((table, len(rows), token, sink.blocked_seconds(), "down"))
            raise ch.OperationalError("Error HTTPConnectionPool: Connection refused")
        real_insert(table, columns, rows, token)

    flaky.insert = insert  # type: ignore[method-assign]

    asyncio.run(drive(sink))

    # The refused fact's KPI deltas were written before its insert failed: withdrawn
    # again, the aggregates count exactly the 64 stored facts.
    (counted,) = store.query(f"SELECT sum(contacts) FROM {store.database}.kpi_minutes")[0]
    (stored,) = store.query(f"SELECT count() FROM {store.database}.contact_facts FINAL")[0]
    assert (counted, stored) == (64, 64)
    assert [(a[1], a[4]) for a in flaky.attempts] == [
        (65, "refused"),
        (32, "refused"),
        (16, "down"),  # the server goes away: back off, then resume at this part
        (16, "down"),
        (16, "ok"),
        (16, "refused"),
        (8, "ok"),
        (8, "refused"),
        (4, "ok"),
        (4, "refused"),
        (2, "ok"),
        (2, "refused"),
        (1, "refused"),  # the poison row (index 30)
        (1, "ok"),
        (33, "ok"),
    ]
    ok_tokens = [a[2] for a in flaky.attempts if a[4] == "ok"]
    assert len(ok_tokens) == len(set(ok_tokens))
    (letter,) = letters(producer)
    assert letter.original_bytes() == poison and letter.source.offset == 30
    assert counts(store, "contact_facts", "contact_id") == (64, 64)
    assert consumer.committed == {TopicPartition(FACTS, 0): 65}
    assert [a[3] for a in flaky.attempts if a[4] == "down"] == [0.0, 0.5]
    assert sink.blocked_seconds() == 0.0 and clock.now > 1000.0


# ---- outages -----------------------------------------------------------------


def test_connection_errors_then_recovery_pause_consumption_and_store_everything_once(
    store: ClickHouseStore,
) -> None:
    """ClickHouse refuses connections for the first 3 inserts, then works: the sink
    backs off 0.5 + 1 + 2 s, polls only with every partition paused meanwhile, the
    blocked gauge rises 0 -> 0.5 -> 1.5 -> 3.5 and is 0 again once written."""
    logs = {
        **log_of(EVENTS, [[event(n) for n in range(400)], [event(n) for n in range(400, 800)]]),
        **log_of(FACTS, [[fact(n) for n in range(400)]]),
    }
    flaky = Store(store, fail=3)
    sink, consumer, producer, _ = make_sink(flaky, logs, 1_000, [CONTACT_EVENTS, CONTACT_FACTS])
    before = sample("vocflow_sink_failures_total", table="contact_events")
    quarantined = sample("vocflow_sink_quarantined_total", table="contact_events")

    asyncio.run(drive(sink))

    assert [(a[0], a[1], a[3], a[4]) for a in flaky.attempts] == [
        # the first poll: 1,000 records (400 + 400 events, 200 facts), due at once
        ("contact_events", 800, 0.0, "unavailable"),
        ("contact_events", 800, 0.5, "unavailable"),
        ("contact_events", 800, 1.5, "unavailable"),
        ("contact_events", 800, 3.5, "ok"),
        ("contact_facts", 200, 0.0, "ok"),  # the blocked batch is written: 0 again
        ("contact_facts", 200, 0.0, "ok"),  # the other 200 facts, after the resume
    ]
    assert len({a[2] for a in flaky.attempts if a[0] == "contact_events"}) == 1  # same token
    # while blocked it polled 4 times (0.5 s, 1 s, 1 s + 1 s), every partition paused,
    # and fetched nothing; then resumed
    assert consumer.polls_all_paused == 4
    assert consumer.paused_tps == set()
    assert producer.sent == []
    assert sample("vocflow_sink_quarantined_total", table="contact_events") == quarantined
    assert sample("vocflow_sink_failures_total", table="contact_events") - before == 3
    assert REGISTRY.get_sample_value("vocflow_sink_blocked_seconds") == 0.0
    assert counts(store, "contact_events", "event_id") == (800, 800)
    assert counts(store, "contact_facts", "contact_id") == (400, 400)
    assert consumer.commits == [
        {
            TopicPartition(EVENTS, 0): 400,
            TopicPartition(EVENTS, 1): 400,
            TopicPartition(FACTS, 0): 200,
        },
        {TopicPartition(FACTS, 0): 400},
    ]


def test_a_partition_assigned_during_an_outage_is_not_read_until_it_is_over(
    store: ClickHouseStore,
) -> None:
    """A rebalance hands over a new partition while the sink waits out an outage: what
    the poll returns from it is put back (seek) and the partition paused."""
    logs = {
        **log_of(EVENTS, [[event(n) for n in range(100)], [event(n) for n in range(100, 150)]]),
    }
    flaky = Store(store, fail=2)
    sink, consumer, _, _ = make_sink(flaky, logs, 100, [CONTACT_EVENTS])
    late = TopicPartition(EVENTS, 1)
    consumer.assigned = {TopicPartition(EVENTS, 0)}
    seen: list[tuple[int, bool]] = []

    def rebalance(c: FakeConsumer) -> None:
        if flaky.fail == 1 and late not in c.assigned:  # after the first failure
            c.assigned.add(late)
        if late in c.assigned:
            seen.append((c.positions[late], late in c.paused_tps))

    consumer.on_poll = rebalance

    asyncio.run(drive(sink))

    assert seen[:2] == [(0, False), (0, True)]  # read once (50 records), put back, paused
    assert counts(store, "contact_events", "event_id") == (150, 150)
    assert consumer.committed == {TopicPartition(EVENTS, 0): 100, late: 50}


def test_a_rebalance_during_an_outage_gives_the_batch_up_instead_of_holding_the_group(
    store: ClickHouseStore,
) -> None:
    """A revoke while the loop's flush waits out an outage: the flush gives its batch
    up uncommitted (no commit, no write) so the revoke returns at once, although
    ClickHouse is still down; the partitions come back, the batch is read again
    from the committed offsets and written once when ClickHouse is back."""
    logs = log_of(EVENTS, [[event(n) for n in range(100)], [event(n) for n in range(100, 150)]])
    flaky = Store(store, fail=4)
    sink, consumer, _, clock = make_sink(flaky, logs, 150, [CONTACT_EVENTS])
    listener = kafka_sink._FlushOnRevoke(sink)
    revoked: list[tuple[float, int, list]] = []  # (when, inserts still to fail, commits)

    async def rebalance(c: FakeConsumer) -> None:  # what aiokafka does on a rebalance
        c.reassigning = True
        await listener.on_partitions_revoked(sorted(c.assigned))
        revoked.append((clock.now, flaky.fail, list(c.commits)))
        for tp in c.logs:  # the same partitions come back, from the committed offsets
            c.positions[tp] = c.committed.get(tp, 0)
        c.paused_tps.clear()
        c.reassigning = False

    tasks = []

    def on_poll(c: FakeConsumer) -> None:
        if flaky.fail == 3 and not tasks:  # after the first failed insert
            tasks.append(asyncio.ensure_future(rebalance(c)))

    consumer.on_poll = on_poll

    asyncio.run(drive(sink))

    assert revoked == [(1000.5, 2, [])]  # returned while ClickHouse was down, nothing committed
    assert [(a[1], a[3], a[4]) for a in flaky.attempts] == [
        (150, 0.0, "unavailable"),
        (150, 0.5, "unavailable"),  # the revoke is waiting: give up
        (150, 0.5, "unavailable"),  # read again; still blocked since the first failure
        (150, 1.0, "unavailable"),
        (150, 2.0, "ok"),
    ]
    assert len({a[2] for a in flaky.attempts}) == 1  # the same batch, the same token
    assert consumer.commits == [{TopicPartition(EVENTS, 0): 100, TopicPartition(EVENTS, 1): 50}]
    assert counts(store, "contact_events", "event_id") == (150, 150)
    assert sink.blocked_seconds() == 0.0


def test_a_revoke_with_clickhouse_down_does_not_wait_for_it(store: ClickHouseStore) -> None:
    """Rows pending (not yet due) when the partitions are revoked and ClickHouse is
    down: one attempt, then the revoke returns without committing them."""
    logs = log_of(EVENTS, [[event(n) for n in range(10)]])
    flaky = Store(store, fail=1)
    sink, consumer, _, _ = make_sink(flaky, logs, 5_000, [CONTACT_EVENTS])

    async def scenario() -> None:
        batches = await consumer.getmany(max_records=5_000)
        for tp, messages in batches.items():
            for msg in messages:
                sink._pending["contact_events"].add(sink._decode(CONTACT_EVENTS, tp, msg), tp, msg)
        await asyncio.wait_for(kafka_sink._FlushOnRevoke(sink).on_partitions_revoked([]), 5)

    asyncio.run(scenario())

    assert [(a[1], a[4]) for a in flaky.attempts] == [(10, "unavailable")]
    assert consumer.commits == [] and not sink._pending
    assert counts(store, "contact_events", "event_id") == (0, 0)


# ---- classification ----------------------------------------------------------


def _data_error() -> Exception:
    try:
        struct.pack("<H", 70_000)
    except struct.error as exc:
        err = ch.DataError("Unable to create native array for column `transfers`: error")
        err.__cause__ = exc
        return err
    raise AssertionError


@pytest.mark.parametrize(
    ("exc", "from_hook", "refused"),
    [
        # ClickHouse unavailable: retry
        (ch.OperationalError("Error HTTPConnectionPool: Connection refused"), False, False),
        (ch.OperationalError("Network Error: Connection reset by peer"), False, False),
        (ConnectionRefusedError(111, "Connection refused"), False, False),
        (TimeoutError("timed out"), False, False),
        (ch.ProgrammingError("The client has been closed"), False, False),
        (
            ch.DatabaseError("Code: 252. DB::Exception: Too many parts (300)", code=252),
            False,
            False,
        ),
        (ch.DatabaseError("Code: 202. Too many simultaneous queries"), False, False),
        (ch.DatabaseError("Code: 159. Timeout exceeded", code=159), False, False),
        (ch.DatabaseError("Code: 241. Memory limit exceeded", code=241), False, False),
        (ch.DatabaseError("Code: 60. Table vocflow.x does not exist", code=60), False, False),
        (ch.DatabaseError("The ClickHouse server returned an error"), False, False),
        (ch.OperationalError("Code: 210. Connection refused", code=210), True, False),
        (MemoryError(), False, False),
        (RuntimeError("chdb"), False, False),
        # ClickHouse refuses this data: quarantine
        (ch.DatabaseError("Code: 27. DB::Exception: Cannot parse input"), False, True),
        (ch.DatabaseError("Code: 53. Type mismatch", code=53), False, True),
        (ch.DatabaseError("Code: 6. Cannot parse string", code=6), False, True),
        (ch.DatabaseError("Code: 321. Value out of range", code=321), False, True),
        (_data_error(), False, True),
        (ch.DataError("Invalid None value in non-Nullable column"), False, True),
        (AttributeError("'str' object has no attribute 'timestamp'"), False, True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), False, True),
        (TypeError("required argument is not an integer"), False, True),
        (struct.error("ubyte format requires 0 <= number <= 255"), False, True),
        (KeyError("team"), True, True),
        (RuntimeError("bug in a hook"), True, True),
    ],
)
def test_refuses_data_classification(exc: Exception, from_hook: bool, refused: bool) -> None:
    assert refuses_data(exc, from_hook=from_hook) is refused


def test_error_text_keeps_the_reason_and_blanks_quoted_values() -> None:
    assert error_text(_data_error()) == (
        "DataError: Unable to create native array for column `transfers`: error "
        "(error: ushort format requires 0 <= number <= 65535)"
    )
    server = ch.DatabaseError(
        "Code: 27. DB::Exception: Cannot parse input: expected '\\t' before: '13812345678'"
    )
    assert error_text(server) == (
        "DatabaseError: Code: 27. DB::Exception: Cannot parse input: expected '…' before: '…'"
    )
    assert len(error_text(ValueError("x" * 2000))) == kafka_sink.MAX_ERROR_CHARS

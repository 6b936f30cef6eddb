"""Kafka -> ClickHouse, as its own consumer group.

Decoupled from the processing agents so those scale out over many workers
while one process owns an embedded ClickHouse. Delivery is at-least-once:
offsets are committed only after the batch is in ClickHouse, and each batch
carries an insert deduplication token built from its offset ranges, so a
retried insert never lands twice. Rows a re-produced event would duplicate
collapse in the ReplacingMergeTree tables (see the DDL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from vocflow.schemas import FieldError, Reason, SourceRef
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import ALL as ALL_TABLES
from vocflow.sinks.clickhouse.tables import Row, TableSpec
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.normalize import dead_letter

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 30.0


@dataclass
class _Pending:
    rows: list[Row] = field(default_factory=list)
    # partition -> (first offset, last offset) of the rows held
    ranges: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)

    def add(self, row: Row | None, tp: TopicPartition, offset: int) -> None:
        if row is not None:
            self.rows.append(row)
        first, _ = self.ranges.get(tp, (offset, offset))
        self.ranges[tp] = (first, offset)

    def token(self, table: str) -> str:
        parts = sorted(f"{tp.topic}/{tp.partition}/{a}-{b}" for tp, (a, b) in self.ranges.items())
        return f"{table}|" + ",".join(parts)


class _FlushOnRevoke(ConsumerRebalanceListener):
    def __init__(self, sink: ClickHouseSink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._sink.flush()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("sink assigned %d partitions", len(assigned))


class ClickHouseSink:
    def __init__(
        self,
        settings: Settings,
        tables: tuple[TableSpec, ...] = ALL_TABLES,
        store: ClickHouseStore | None = None,
    ) -> None:
        self.settings = settings
        self.group_id = f"{settings.app_id}-sink"
        self.store = store
        self.tables = tables
        topics = T.Topics(settings)
        self._by_topic = {topics.name(t.source): t for t in tables}
        self._dlq_topic = topics.name(T.DLQ)
        self._pending: dict[str, _Pending] = defaultdict(_Pending)
        self._pending_since: float | None = None
        self._dlq_sends: list[asyncio.Future] = []
        self._flush_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.store is None:
            self.store = await loop.run_in_executor(
                None,
                ClickHouseStore,
                self.settings.clickhouse_dsn,
                self.settings.clickhouse_database,
            )
        await loop.run_in_executor(None, self.store.migrate)
        self._producer = kafka_clients.aio_producer(self.settings)
        self._consumer = kafka_clients.aio_consumer(
            self.settings,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=kafka_clients.MAX_PARTITION_FETCH_BYTES,
            fetch_max_bytes=kafka_clients.MAX_FETCH_BYTES,
        )
        await self._producer.start()
        await self._consumer.start()
        self._consumer.subscribe(list(self._by_topic), listener=_FlushOnRevoke(self))
        self._task = asyncio.create_task(self.run(), name="clickhouse-sink")
        log.info("ClickHouse sink started: %s -> %s", ", ".join(self._by_topic), self.store.dsn)

    async def wait(self) -> None:
        """Until the consume loop ends (stop(), or an error it could not handle)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def run(self) -> None:
        """Consume and flush until `stop()`; started as a task by `start()`."""
        assert self._consumer is not None
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(
                timeout_ms=200, max_records=self.settings.sink_batch_rows
            )
            for tp, messages in batches.items():
                spec = self._by_topic[tp.topic]
                pending = self._pending[spec.table]
                for msg in messages:
                    pending.add(self._decode(spec, tp, msg), tp, msg.offset)
                if self._pending_since is None and messages:
                    self._pending_since = time.monotonic()
            if self._due():
                await self.flush()

    def _due(self) -> bool:
        if self._pending_since is None:
            return False
        rows = sum(len(p.rows) for p in self._pending.values())
        age = time.monotonic() - self._pending_since
        return rows >= self.settings.sink_batch_rows or age >= self.settings.sink_flush_seconds

    def _decode(self, spec: TableSpec, tp: TopicPartition, msg) -> Row | None:  # type: ignore[no-untyped-def]
        try:
            return spec.to_row(msg.value, tp.partition, msg.offset)
        except ValueError as exc:
            metrics.SINK_REJECTS.labels(spec.source.name).inc()
            log.warning("sink: %s[%d]@%d undecodable: %s", tp.topic, tp.partition, msg.offset, exc)
            if tp.topic != self._dlq_topic:
                letter = dead_letter(
                    msg.value or b"",
                    SourceRef(topic=tp.topic, partition=tp.partition, offset=msg.offset),
                    Reason.processing_error,
                    [FieldError(loc="", type="sink_decode", msg=str(exc))],
                    stage="sink",
                )
                assert self._producer is not None
                self._dlq_sends.append(
                    asyncio.ensure_future(
                        self._producer.send(
                            self._dlq_topic, letter.model_dump_json().encode(), key=msg.key
                        )
                    )
                )
            return None

    async def flush(self) -> None:
        """Write every pending batch, retrying until it succeeds, then commit its offsets."""
        async with self._flush_lock:
            if not self._pending:
                return
            loop = asyncio.get_running_loop()
            for table, pending in list(self._pending.items()):
                if pending.rows:
                    await self._insert_with_retry(loop, table, pending)
            if self._dlq_sends:
                for sent in await asyncio.gather(*self._dlq_sends):
                    await sent
                self._dlq_sends.clear()
            offsets: dict[TopicPartition, int] = {}
            for pending in self._pending.values():
                for tp, (_, last) in pending.ranges.items():
                    offsets[tp] = max(offsets.get(tp, 0), last + 1)
            assert self._consumer is not None
            await self._consumer.commit(offsets)
            self._pending.clear()
            self._pending_since = None

    async def _insert_with_retry(
        self, loop: asyncio.AbstractEventLoop, table: str, pending: _Pending
    ) -> None:
        spec = next(t for t in self._by_topic.values() if t.table == table)
        token = pending.token(table)
        delay = 0.5
        assert self.store is not None
        while True:
            started = time.perf_counter()
            try:
                await loop.run_in_executor(None, self._write, spec, pending, token)
            except Exception as exc:  # ClickHouse errors are many types; all are retried
                metrics.SINK_FAILURES.labels(table).inc()
                log.error(
                    "sink: insert into %s failed (%s); retrying in %.1fs",
                    table,
                    str(exc)[:300],
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
                continue
            metrics.SINK_FLUSH_SECONDS.labels(table).observe(time.perf_counter() - started)
            metrics.SINK_BATCH_ROWS.labels(table).observe(len(pending.rows))
            metrics.SINK_ROWS.labels(table).inc(len(pending.rows))
            return

    def _write(self, spec: TableSpec, pending: _Pending, token: str) -> None:
        assert self.store is not None
        if spec.before_insert is not None:
            pending.rows = spec.before_insert(self.store, pending.rows)
        self.store.insert(spec.table, spec.columns, pending.rows, token)

    async def stop(self) -> None:
        """Finish the current poll, write what is pending, commit, close."""
        self._stopping.set()
        try:
            if self._task is not None:
                await self._task
            await self.flush()
        finally:
            if self._consumer is not None:
                await self._consumer.stop()
            if self._producer is not None:
                await self._producer.stop()
            if self.store is not None:
                self.store.close()

    def row_counts(self) -> dict[str, int]:
        """Distinct rows per table (FINAL), for the stats API and the demo summary."""
        assert self.store is not None
        db = self.settings.clickhouse_database
        return {
            spec.table: int(self.store.query(f"SELECT count() FROM {db}.{spec.table} FINAL")[0][0])
            for spec in self._by_topic.values()
        }

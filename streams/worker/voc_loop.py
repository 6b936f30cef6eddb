"""The voc stage, exactly once: contacts.voc -> enrich -> tag -> repeat check ->
route -> dept.<department> (+ contacts.dlq), as a transactional
consume-transform-produce loop on aiokafka instead of a Faust agent; the audit
copy on contacts.routed is written at least once, before each commit.

Why not a Faust agent: a department system opens a ticket per envelope, and an
at-least-once agent re-sends what it had sent but not committed when it was
killed (issue 13 measured +8 % envelopes after two kill -9); Faust's own
exactly_once mode is broken (../shared/FACTS.md). Here each batch of one input
partition is one Kafka transaction holding its envelopes, its dead letters, its
state changes (contacts.voc-state, compacted; `stages/voc_state.py`) and the
consumed offsets: all of them commit, or none. (contacts.routed stays outside:
its reader, the Faust facts agent, cannot consume a transactional topic.)

Each input partition has its own transactional producer, id
``<app_id>-voc-<partition>``: whoever takes the partition over (a restarted
worker, or another worker after a rebalance) fences the previous owner, and the
broker aborts whatever that owner left open, before the new owner restores the
partition's state from the changelog (read_committed). Department consumers must
read with ``isolation.level=read_committed`` (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from mode import Service

from vocflow.schemas import ContactEvent, FieldError, Reason, SourceRef
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.faults import crash_point
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.normalize import dead_letter
from vocflow.streams.stages.routing import STAGE as ROUTE
from vocflow.streams.stages.voc import VocResult, analyse_and_route
from vocflow.streams.stages.voc_state import VocState
from vocflow.streams.worker.wiring import WorkerApp

log = logging.getLogger(__name__)

MAX_BATCH = 500  # records of one partition per transaction
RESTORE_TIMEOUT_S = 120.0
FIRST_RETRY_S, MAX_RETRY_S = 0.5, 10.0  # backoff while the cluster does not answer

Output = tuple[str, bytes | None, bytes]


def group_id(settings: Settings) -> str:
    """The loop's consumer group (its committed offsets live in its transactions)."""
    return f"{settings.app_id}-voc"


@dataclass
class _Partition:
    """One assigned input partition: its producer and its state."""

    tp: TopicPartition
    producer: AIOKafkaProducer
    state: VocState


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: VocLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.loop.lock:  # after the batch in progress has committed
            await self.loop.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.loop.lock:
            await self.loop.take(assigned)


class VocLoop(Service):
    """The loop and the partitions it owns (a mode Service of the worker)."""

    def __init__(
        self,
        app: WorkerApp,
        topics: T.Topics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        settings = app.settings_
        self.app = app
        self.settings = settings
        self.clock = clock
        self.group_id = group_id(settings)
        self.voc_topic = topics.name(T.VOC)
        self.routed_topic = topics.name(T.ROUTED)
        self.dlq_topic = topics.name(T.DLQ)
        self.state_topic = topics.name(T.VOC_STATE)
        self.topics = topics
        self.window = timedelta(hours=settings.repeat_window_hours)
        self.partitions: dict[int, _Partition] = {}
        # Held by a batch from its first record to its commit, and by the rebalance
        # callbacks (which aiokafka runs in its own task): a partition is never
        # released or taken over under a transaction in progress.
        self.lock = asyncio.Lock()
        self.department_topics: dict[str, str] = {}
        self.consumer: AIOKafkaConsumer | None = None
        # contacts.routed is written outside the transactions, see _process.
        self.routed_producer: AIOKafkaProducer | None = None

    async def on_start(self) -> None:
        self.routed_producer = kafka_clients.aio_producer(
            self.settings, role="voc-routed", linger_ms=5
        )
        await self.routed_producer.start()
        self.consumer = kafka_clients.aio_consumer(
            self.settings,
            role="voc",
            group_id=self.group_id,
            group_instance_id=self.settings.group_instance_id,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=kafka_clients.MAX_PARTITION_FETCH_BYTES,
        )
        self.consumer.subscribe([self.voc_topic], listener=_Rebalance(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        async with self.lock:
            await self.release([p.tp for p in list(self.partitions.values())])
        if self.routed_producer is not None:
            await self.routed_producer.stop()

    @Service.task
    async def _run(self) -> None:
        await self.app.views_loaded.wait()  # routing needs the customer profiles
        assert self.consumer is not None
        while not self.should_stop:
            batches = await self.consumer.getmany(timeout_ms=500, max_records=MAX_BATCH)
            for tp, records in batches.items():
                if records:
                    async with self.lock:
                        try:
                            await self._process(tp, records)
                        except Exception:
                            # Nothing of the batch is committed: forget it, read it again.
                            log.exception("voc: batch of %s[%d] failed", tp.topic, tp.partition)
                            await self._reset(tp)

    # ---- partitions come and go

    async def take(self, assigned: list[TopicPartition]) -> None:
        """Fence the previous owner of each partition, then restore its state.
        (Callers hold `lock`.)"""
        for tp in assigned:
            if tp.partition in self.partitions:
                continue
            producer = kafka_clients.aio_producer(
                self.settings,
                role=f"voc-{tp.partition}",
                transactional_id=f"{self.settings.app_id}-voc-{tp.partition}",
                linger_ms=5,
            )
            try:
                await producer.start()  # InitProducerId: fences, aborts the old owner's txn
                state = VocState(self.window)
                state.restore(await self._changelog(tp.partition))
            except BaseException:
                await producer.stop()
                raise
            self.partitions[tp.partition] = _Partition(tp, producer, state)
            metrics.VOC_STATE_ENTRIES.labels(str(tp.partition)).set(
                len(state.issues) + len(state.routed)
            )
        log.info("voc: owns partitions %s", sorted(self.partitions))

    async def release(self, revoked: list[TopicPartition]) -> None:
        """Close the producers of partitions this loop no longer owns. (Callers hold `lock`.)"""
        for tp in revoked:
            part = self.partitions.pop(tp.partition, None)
            if part is not None:
                await part.producer.stop()

    async def _changelog(self, partition: int) -> list[tuple[bytes, bytes | None]]:
        """Every committed record of one changelog partition, in order."""
        reader = kafka_clients.aio_consumer(
            self.settings,
            role="voc-restore",
            isolation_level="read_committed",
            max_partition_fetch_bytes=kafka_clients.MAX_PARTITION_FETCH_BYTES,
        )
        await reader.start()
        try:
            tp = TopicPartition(self.state_topic, partition)
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]  # read_committed: the stable end
            records: list[tuple[bytes, bytes | None]] = []
            deadline = asyncio.get_running_loop().time() + RESTORE_TIMEOUT_S
            while await reader.position(tp) < end:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"voc: restoring {tp} did not reach offset {end}")
                batch = await reader.getmany(tp, timeout_ms=500)
                records.extend((r.key, r.value) for r in batch.get(tp, ()))
            return records
        finally:
            await reader.stop()

    async def _until_done(self, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
        """`attempt()` until it succeeds, with backoff while the cluster does not
        answer (a broker restarting): the loop waits, nothing is lost or done twice.
        A stopping loop gives up at once."""
        delay = FIRST_RETRY_S
        while True:
            try:
                await attempt()
                return
            except Exception as exc:
                if self.should_stop:
                    raise
                log.warning("voc: %s failed (%s); retrying in %.1f s", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)

    async def _reset(self, tp: TopicPartition) -> None:
        """After a failed transaction: drop the partition's memory, fence again,
        restore, and read again from the committed offset."""
        assert self.consumer is not None
        consumer = self.consumer

        async def again() -> None:
            await self.release([tp])
            await self.take([tp])
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

        await self._until_done(f"taking {tp.topic}[{tp.partition}] over again", again)

    # ---- one batch, one transaction

    async def _department_topic(self, department: str) -> str:
        name = self.department_topics.get(department)
        if name is None:
            from vocflow.streams.core.admin import ensure_topics

            spec = T.department_spec(department)
            loop = asyncio.get_running_loop()

            async def create() -> None:
                await loop.run_in_executor(None, ensure_topics, self.settings, (spec,))

            # A broker that cannot answer now is not the record's fault: wait for it.
            await self._until_done(f"creating {self.topics.name(spec)}", create)
            name = self.department_topics[department] = self.topics.name(spec)
        return name

    def _route(self, state: VocState, value: bytes) -> VocResult:
        event = ContactEvent.model_validate_json(value)
        return analyse_and_route(
            event,
            self.app.profiles,
            self.app.rules.current,
            self.clock(),
            last_issue=state.last_issue,
            already_routed=state.already_routed(event.contact_id),
            window=self.window,
        )

    async def _process(self, tp: TopicPartition, records: list[Any]) -> None:
        part = self.partitions.get(tp.partition)
        if part is None:
            # Revoked while the batch was on its way, or taking it over failed: then
            # take it now and read the batch again from the committed offset.
            assert self.consumer is not None
            if tp in self.consumer.assignment():
                await self._reset(tp)
            return
        state = part.state
        outputs: list[Output] = []
        routed: list[tuple[bytes, bytes]] = []
        results: list[VocResult] = []
        rejected: list[str] = []
        for record in records:
            try:
                result = self._route(state, record.value or b"")
            except Exception as exc:
                source = SourceRef.of(
                    tp.topic, tp.partition, record.offset, record.key, record.timestamp
                )
                log.exception(
                    "%s failed on %s[%d]@%d", ROUTE, tp.topic, tp.partition, source.offset
                )
                letter = dead_letter(
                    record.value or b"",
                    source,
                    Reason.processing_error,
                    [FieldError(loc="", type=type(exc).__name__, msg=str(exc)[:500])],
                    stage=ROUTE,
                )
                outputs.append((self.dlq_topic, record.key, letter.model_dump_json().encode()))
                rejected.append(letter.reason.value)
                continue
            event = result.contact.event
            state.observe(event.occurred_at)
            if result.repeat_key is not None:
                state.remember_issue(result.repeat_key, result.last_issue)
            envelope = result.envelope
            if envelope is not None:
                body = envelope.model_dump_json().encode()
                key = event.contact_id.encode()
                outputs.append((await self._department_topic(envelope.department), key, body))
                routed.append((key, body))
                state.remember_routed(event.contact_id, envelope.department, event.occurred_at)
            results.append(result)
        changes = state.take_journal()
        producer = part.producer
        try:
            # contacts.routed, the audit log read by the facts agent (Faust), is written
            # at least once, outside the transaction but delivered before it commits: a
            # batch read again sends it again (the readers drop the copy: routing_log by
            # contact, the fact's annotation is the same). Faust cannot read a
            # transactional topic: its commit stops at the markers (a gap it never
            # fills), and its group's lag there never went down (the alerting test).
            assert self.routed_producer is not None
            sends = [
                await self.routed_producer.send(self.routed_topic, value=body, key=key)
                for key, body in routed
            ]
            await asyncio.gather(*sends)
            async with producer.transaction():
                for topic, key, value in outputs:
                    await producer.send(topic, value=value, key=key)
                for key, value in changes:
                    await producer.send(
                        self.state_topic, value=value, key=key, partition=tp.partition
                    )
                crash_point("voc.mid_transaction")
                await producer.send_offsets_to_transaction(
                    {tp: records[-1].offset + 1}, self.group_id
                )
        except Exception:
            metrics.VOC_TRANSACTIONS.labels("failed").inc()
            log.exception(
                "voc: transaction for %s[%d] failed; reading %d record(s) again",
                tp.topic,
                tp.partition,
                len(records),
            )
            await self._reset(tp)
            return
        metrics.VOC_TRANSACTIONS.labels("committed").inc()
        self._count(len(records), results, rejected)
        metrics.VOC_STATE_ENTRIES.labels(str(tp.partition)).set(
            len(state.issues) + len(state.routed)
        )

    @staticmethod
    def _count(n: int, results: list[VocResult], rejected: list[str]) -> None:
        """Metrics of a committed batch (only committed work is counted)."""
        metrics.STAGE_IN.labels(ROUTE).inc(n)
        for reason in rejected:
            metrics.DLQ.labels(ROUTE, reason).inc()
        for result in results:
            for kind, k in result.contact.analysis.pii_masked.items():
                metrics.PII_MASKED.labels(kind).inc(k)
            if result.previous_contact_id is not None:
                metrics.REPEATS.inc()
            envelope = result.envelope
            if envelope is not None:
                metrics.ROUTED.labels(envelope.department, envelope.tags.urgency.value).inc()
                metrics.STAGE_OUT.labels(ROUTE, "dept").inc()

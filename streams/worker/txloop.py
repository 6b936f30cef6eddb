"""Exactly-once stages: a transactional consume-transform-produce loop on
aiokafka, which the worker's three stages (normalize, voc, facts) are built on.

Why not Faust agents: a kill -9 must change no KPI and duplicate no department
envelope, and Faust gives neither. Its agents are at least once: they re-send
what they had sent but not committed (issue 13 measured +8 % department
envelopes after two kills), its `exactly_once` mode is broken
(../shared/FACTS.md), and the fault suite caught its consumer dropping records
outright: a record in flight while the flow is suspended (the table recovery
after a restart seeks and resumes) is cancelled, yet its read offset is
recorded, and the offset jump counts as a gap that is acked and committed
(faust/transport/consumer.py `_drain_messages`, `_add_gap`). One routing
decision and one wrapup event were lost that way in three fault runs.

Here each batch of one input partition is one Kafka transaction holding
everything the batch produced: its outputs, its dead letters, the changes to
the stage's state (a compacted changelog topic, read back read_committed when a
partition is taken over) and the consumed offsets. All of them commit, or none;
a batch read again after a kill starts from the state that goes with its
offsets, so it produces exactly what the first attempt would have.

Each partition number has its own transactional producer
(``<app_id>-<stage>-<partition>``): whoever takes the partition over (a
restarted worker, or another worker after a rebalance) fences the previous
owner, and the broker aborts whatever that owner left open, before the new
owner restores the partition's state. A stage with several inputs needs them
co-partitioned (same key, same partition count): partition p of each input
shares partition p's state, and the range assignor keeps them on one worker.
Readers of the outputs must read with ``isolation.level=read_committed``
(docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from mode import Service

from vocflow.schemas import DeadLetter, FieldError, Reason, SourceRef
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import kafka_clients
from vocflow.streams.core.faults import crash_point
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.normalize import dead_letter
from vocflow.streams.worker.wiring import WorkerApp

log = logging.getLogger(__name__)

MAX_BATCH = 500  # records of one partition per transaction
RESTORE_TIMEOUT_S = 120.0
FIRST_RETRY_S, MAX_RETRY_S = 0.5, 10.0  # backoff while the cluster does not answer

S = TypeVar("S")


@dataclass
class Output:
    """One record a batch produces."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


@dataclass
class Batch:
    """What one batch produced, committed in one transaction.

    `early` records are sent outside the transaction, at least once, delivered
    before it commits (for a reader that cannot read a transactional topic);
    `changes` go to the stage's changelog, on the batch's partition."""

    outputs: list[Output] = field(default_factory=list)
    changes: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    early: list[Output] = field(default_factory=list)
    done: Callable[[], None] | None = None  # metrics, run once it has committed


def group_id(settings: Settings, stage: str) -> str:
    """A stage's consumer group (its committed offsets live in its transactions)."""
    return f"{settings.app_id}-{stage}"


def source_of(record: Any) -> SourceRef:
    """Where a consumer record came from, as a dead letter names it."""
    return SourceRef.of(record.topic, record.partition, record.offset, record.key, record.timestamp)


def rejected(stage: str, record: Any, exc: Exception) -> DeadLetter:
    """The `processing_error` dead letter of a record its stage raised on (a stage bug
    must not stop the pipeline), logged with the record's coordinates."""
    source = source_of(record)
    log.error(
        "%s failed on %s[%d]@%d: %s: %s",
        stage,
        record.topic,
        record.partition,
        record.offset,
        type(exc).__name__,
        str(exc)[:300],
        exc_info=exc,
    )
    return dead_letter(
        record.value or b"",
        source,
        Reason.processing_error,
        [FieldError(loc="", type=type(exc).__name__, msg=str(exc)[:500])],
        stage=stage,
    )


@dataclass
class _Partition(Generic[S]):
    """One owned partition number: its producer and its state."""

    partition: int
    producer: AIOKafkaProducer
    state: S


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: TxLoop[Any]) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.loop.lock:  # after the batch in progress has committed
            await self.loop.release({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.loop.lock:
            await self.loop.take({tp.partition for tp in assigned})


class TxLoop(Service, Generic[S]):
    """One stage's loop and the partitions it owns (a mode Service of the worker).

    A stage subclass names itself (`stage`), its inputs and changelog, and gives
    `new_state`, `restore` and `process`; this class owns the consumer, the
    producers, the transactions, rebalances and retries."""

    stage: ClassVar[str]
    crash_point_name: ClassVar[str]  # streams/core/faults.py: passed per record sent
    log_every_take: ClassVar[bool] = True

    def __init__(
        self,
        app: WorkerApp,
        inputs: list[str],
        state_topic: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.settings = app.settings_
        self.inputs = inputs
        self.state_topic = state_topic
        self.group_id = group_id(self.settings, self.stage)
        self.partitions: dict[int, _Partition[S]] = {}
        # Held by a batch from its first record to its commit, and by the rebalance
        # callbacks (which aiokafka runs in its own task): a partition is never
        # released or taken over under a transaction in progress.
        self.lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.early_producer: AIOKafkaProducer | None = None
        self.stopping = False

    # ---- what a stage defines

    def new_state(self, partition: int) -> S:
        raise NotImplementedError

    def restore(self, partition: int, state: S, records: list[tuple[bytes, bytes | None]]) -> None:
        """Rebuild `state` from its changelog partition (only with a `state_topic`)."""

    async def process(self, state: S, tp: TopicPartition, records: list[Any]) -> Batch:
        raise NotImplementedError

    async def ready(self) -> None:
        """Awaited once before the first batch (what the stage needs loaded)."""

    # ---- lifecycle

    async def on_start(self) -> None:
        self.early_producer = kafka_clients.aio_producer(
            self.settings, role=f"{self.stage}-early", linger_ms=5
        )
        await self.early_producer.start()
        self.consumer = kafka_clients.aio_consumer(
            self.settings,
            role=self.stage,
            group_id=self.group_id,
            group_instance_id=f"{self.settings.group_instance_id}-{self.stage}",
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=kafka_clients.LOOP_PARTITION_FETCH_BYTES,
            partition_assignment_strategy=(RangePartitionAssignor,),
            # A take-over restores state inside the rebalance callback; on a loaded
            # SASL_SSL cluster that took longer than aiokafka's 10 s default, the
            # group expired the member and rebalanced again, over and over. Static
            # membership keeps a restarted worker's partitions, so a longer session
            # costs no failover time on a restart.
            session_timeout_ms=45_000,
            heartbeat_interval_ms=3_000,
        )
        self.consumer.subscribe(self.inputs, listener=_Rebalance(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        self.stopping = True  # a rebalance from here on takes nothing over
        if self.consumer is not None:
            await self.consumer.stop()
        async with self.lock:
            await self.release(set(self.partitions))
        if self.early_producer is not None:
            await self.early_producer.stop()

    @Service.task
    async def _run(self) -> None:
        await self.ready()
        while not self.should_stop:
            try:
                await self._once()
            except asyncio.CancelledError:
                if self.should_stop:
                    raise
                # Seen while the broker restarted during the first take-over of the
                # partitions: the task was cancelled from inside aiokafka, and before
                # this guard the stage stopped for good with the worker still up.
                log.warning("%s: cancelled while not stopping; going on", self.stage, exc_info=True)
                await self._reset_all()
            except Exception:
                log.exception("%s: the loop failed; going on", self.stage)
                await self._reset_all()

    async def _once(self) -> None:
        """One fetch, and one transaction per partition that brought records, all at
        once: each partition has its own producer, and one after the other the round
        trips of six transactions (add partitions, produce, add offsets, offset
        commit, end) put most of a second between a record's arrival and its output
        at a few hundred records a second."""
        assert self.consumer is not None
        batches = await self.consumer.getmany(timeout_ms=500, max_records=MAX_BATCH)
        # Batches of one partition number share its producer and state (the facts
        # loop reads two co-partitioned topics): those go one after the other.
        work: dict[int, list[tuple[TopicPartition, list[Any]]]] = {}
        for tp, records in batches.items():
            if records:
                work.setdefault(tp.partition, []).append((tp, records))
        if work:
            async with self.lock:
                await asyncio.gather(*(self._transact_in_turn(ws) for ws in work.values()))

    async def _transact_in_turn(self, work: list[tuple[TopicPartition, list[Any]]]) -> None:
        for tp, records in work:
            try:
                await self._transact(tp, records)
            except Exception:
                # Nothing of the batch is committed: forget it, read it again.
                log.exception("%s: batch of %s[%d] failed", self.stage, tp.topic, tp.partition)
                await self._reset(tp.partition)
                return  # the partition's other batches are read again after the reset

    async def _reset_all(self) -> None:
        """After an interruption at an unknown point: every owned partition's state
        may hold a half-processed batch, so restore them all from their changelogs
        and read again from the committed offsets."""
        await asyncio.sleep(FIRST_RETRY_S)
        assert self.consumer is not None
        async with self.lock:
            assigned = {tp.partition for tp in self.consumer.assignment()}
            await self.release(set(self.partitions) - assigned)
            for partition in sorted(assigned):
                await self._reset(partition)

    # ---- partitions come and go

    async def take(self, assigned: set[int]) -> None:
        """Fence the previous owner of each partition, then restore its state, all
        partitions at once: one by one, six take-overs on a SASL_SSL cluster (a TLS
        handshake and a SCRAM exchange per new connection) took over a minute, longer
        than the group waits for a member in its rebalance callback. Nothing is
        taken while the loop stops. (Callers hold `lock`.)"""
        if self.stopping:
            return
        wanted = sorted(assigned - set(self.partitions))
        taken = await asyncio.gather(*(self._take(p) for p in wanted), return_exceptions=True)
        failed = None
        for partition, result in zip(wanted, taken, strict=True):
            if isinstance(result, BaseException):
                failed = failed or result
            else:
                self.partitions[partition] = result
        log.info("%s: owns partitions %s", self.stage, sorted(self.partitions))
        if failed is not None:
            raise failed

    async def _take(self, partition: int) -> _Partition[S]:
        producer = kafka_clients.aio_producer(
            self.settings,
            role=f"{self.stage}-{partition}",
            transactional_id=f"{self.settings.app_id}-{self.stage}-{partition}",
            linger_ms=5,
        )
        try:
            await producer.start()  # InitProducerId: fences, aborts the old owner's txn
            state = self.new_state(partition)
            if self.state_topic is not None:
                self.restore(partition, state, await self._changelog(partition))
        except BaseException:
            await producer.stop()
            raise
        return _Partition(partition, producer, state)

    async def release(self, revoked: set[int]) -> None:
        """Close the producers of partitions this loop no longer owns. (Callers hold `lock`.)"""
        for partition in revoked:
            part = self.partitions.pop(partition, None)
            if part is not None:
                await part.producer.stop()

    async def _changelog(self, partition: int) -> list[tuple[bytes, bytes | None]]:
        """Every committed record of one changelog partition, in order."""
        assert self.state_topic is not None
        reader = kafka_clients.aio_consumer(
            self.settings,
            role=f"{self.stage}-restore",
            isolation_level="read_committed",
            max_partition_fetch_bytes=kafka_clients.LOOP_PARTITION_FETCH_BYTES,
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
                if self.stopping:  # the worker stops: do not hold it up for a take-over
                    raise RuntimeError(f"{self.stage}: stopping, {tp} not restored")
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{self.stage}: restoring {tp} did not reach offset {end}")
                batch = await reader.getmany(tp, timeout_ms=500)
                records.extend((r.key, r.value) for r in batch.get(tp, ()))
            return records
        finally:
            await reader.stop()

    async def until_done(self, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
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
                log.warning("%s: %s failed (%s); retrying in %.1f s", self.stage, what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)

    async def _reset(self, partition: int) -> None:
        """After a failed transaction: drop the partition's memory, fence again,
        restore, and read its inputs again from the committed offsets."""
        assert self.consumer is not None
        consumer = self.consumer

        async def again() -> None:
            await self.release({partition})
            await self.take({partition})
            for tp in consumer.assignment():
                if tp.partition != partition:
                    continue
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)

        await self.until_done(f"taking partition {partition} over again", again)

    # ---- one batch, one transaction

    async def _transact(self, tp: TopicPartition, records: list[Any]) -> None:
        part = self.partitions.get(tp.partition)
        if part is None:
            # Revoked while the batch was on its way, or taking it over failed: then
            # take it now and read the batch again from the committed offset.
            assert self.consumer is not None
            if tp in self.consumer.assignment():
                await self._reset(tp.partition)
            return
        batch = await self.process(part.state, tp, records)
        producer = part.producer
        try:
            if batch.early:
                assert self.early_producer is not None
                early = [(o.topic, o.key, o.value, None) for o in batch.early]
                await asyncio.gather(*await kafka_clients.send_batched(self.early_producer, early))
            async with producer.transaction():
                # Record batches, not a send per record (kafka_clients.send_batched).
                await kafka_clients.send_batched(
                    producer,
                    [(o.topic, o.key, o.value, o.partition) for o in batch.outputs],
                    sent=lambda: crash_point(self.crash_point_name),  # counted per record
                )
                if self.state_topic is not None:
                    state_topic, partition = self.state_topic, tp.partition
                    await kafka_clients.send_batched(
                        producer, [(state_topic, k, v, partition) for k, v in batch.changes]
                    )
                await producer.send_offsets_to_transaction(
                    {tp: records[-1].offset + 1}, self.group_id
                )
        except Exception:
            metrics.TX_BATCHES.labels(self.stage, "failed").inc()
            log.exception(
                "%s: transaction for %s[%d] failed; reading %d record(s) again",
                self.stage,
                tp.topic,
                tp.partition,
                len(records),
            )
            await self._reset(tp.partition)
            return
        metrics.TX_BATCHES.labels(self.stage, "committed").inc()
        if batch.done is not None:
            batch.done()

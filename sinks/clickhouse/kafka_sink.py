"""Kafka -> ClickHouse, as its own consumer group.

Decoupled from the processing agents so those scale out over many workers
while one process owns an embedded ClickHouse. Delivery is at-least-once:
offsets are committed only after the batch is in ClickHouse, and each batch
carries an insert deduplication token built from its offset ranges, so a
retried insert never lands twice. Rows a re-produced event would duplicate
collapse in the ReplacingMergeTree tables (see the DDL).

Two kinds of insert failure, two answers (docs/operations.md "Sink: poison
rows and outages"):

* **ClickHouse is unavailable**: retry the batch with backoff (0.5 s doubling
  to 30 s), forever, dropping nothing; meanwhile every assigned partition is
  paused (the consume loop keeps polling, so the group keeps this member, but
  no record is fetched or buffered) and `vocflow_sink_blocked_seconds` counts
  the seconds since the first failed attempt. The sink catches up by itself
  when ClickHouse is back. If the group takes partitions away meanwhile (a
  rebalance), the sink does not hold the rebalance up: it gives the unwritten
  batch up without committing it (the partitions' next owner reads it again).
  Waiting there would stall the whole group, and deadlock this member: the
  revoke would wait for the flush, and aiokafka's poll waits for the rebalance.
* **ClickHouse refuses this data** (a poison row): the batch is bisected to the
  rows it refuses, every other row is inserted, and each refused row is
  quarantined: a dead letter on the DLQ topic (stage ``sink``, reason
  ``processing_error``, the error text as field error ``sink_refused``, the
  record's original bytes and coordinates) and
  `vocflow_sink_quarantined_total{table}`. Then the offsets are committed as
  usual, so one bad record never stalls the other tables.

How an exception is classified (`refuses_data`); **when in doubt it is
"unavailable"**, because retrying loses nothing and quarantining by mistake
diverts good data to the DLQ:

1. ``OSError`` (connection refused/reset, ``TimeoutError``) -> unavailable.
2. A clickhouse-connect exception (``clickhouse_connect.driver.exceptions``)
   with a ClickHouse error code (``exc.code``, or ``Code: N`` in its text) ->
   refused only if the code is one of `DATA_ERROR_CODES` (parse, type,
   range and constraint errors: 6, 25, 26, 27, 38, 41, 53, 69, 70, 72, 117,
   131, 321, 349, 469); every other code (159 timeout, 202/203 overloaded,
   209/210 network, 241 memory, 242/243 read-only/disk, 252 too many parts,
   319 unknown insert status, 60 unknown table, 16 no such column, ...) ->
   unavailable.
3. A clickhouse-connect exception without a code: ``DataError`` -> refused
   (clickhouse-connect raises it while it serializes the rows on the client,
   before anything is sent: a value out of a column's range, a None in a
   non-Nullable column); anything else (``OperationalError``: network and HTTP
   failures; ``ProgrammingError``: the embedded store closed; a generic
   ``DatabaseError``) -> unavailable.
4. Any other exception from the insert call that is ``TypeError``,
   ``ValueError`` (``UnicodeEncodeError``), ``AttributeError``,
   ``OverflowError``, ``KeyError``, ``IndexError`` or ``struct.error`` ->
   refused: clickhouse-connect serializes in-process and lets these escape
   for a value its column type cannot take (a str in a DateTime column, a
   lone surrogate in a String); transport errors never surface as these.
   Anything else (``MemoryError``, ``RuntimeError``, ...) -> unavailable.
5. An exception raised by the table's ``before_insert`` hook that is not an
   ``OSError`` or a clickhouse-connect exception (those are classified as
   above: the hook queries ClickHouse) -> refused: our own code cannot handle
   these rows. A row builder (`TableSpec.to_row`) raising anything but
   ``ValueError`` (undecodable: dead-lettered as before, ``sink_decode``) or
   ``RowShapeError`` (a bug that must stop the sink) is quarantined the same
   way, before the batch is written.

Bisection: a refused insert of more than one row is split in two halves,
written in order (the left half first, so versions of one contact still reach
ClickHouse in order), and so on down to single rows; a refused single row is
quarantined. Every insert carries a token derived from its rows' offsets (the
whole batch keeps the batch token above; a part gets
``<table>|<topic>/<partition>/<first>-<last>,...`` of its rows), so the same
part re-inserted after a crash or a retry is dropped by ClickHouse. Cost for
one poison row in a batch of N rows: 1 + 2d insert attempts, d = the depth of
its leaf, floor or ceil of log2 N (19 or 21 for N = 1,000; 29 or 31 for
20,000); d of them succeed and together hold the N - 1 good rows. k poison
rows cost at most about 1 + 2k*log2(N) attempts. If a part fails as unavailable midway,
the bisection pauses and resumes where it stopped after the backoff (parts
already written are not written again); if it ends without a refused row (the
whole-batch failure was not the data after all), every row is stored and
nothing is quarantined. A poison row of the DLQ topic itself is counted and
logged but not dead-lettered again (no loop). Refused inserts do not count in
`vocflow_sink_failures_total` (retried failures only).

The ``before_insert`` hook gets copies of the rows at each attempt, so a retry
or a part starts from the rows as decoded, whatever the hook changes in place,
and the sink's settings (contact_facts judges service level with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from clickhouse_connect.driver import exceptions as ch_errors

from vocflow.schemas import FieldError, Reason, SourceRef
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import ALL as ALL_TABLES
from vocflow.sinks.clickhouse.tables import Row, RowShapeError, TableSpec
from vocflow.sinks.prometheus import metrics
from vocflow.streams.core import kafka_clients
from vocflow.streams.core import topics as T
from vocflow.streams.core.faults import crash_point
from vocflow.streams.core.settings import Settings
from vocflow.streams.stages.normalize import dead_letter

log = logging.getLogger(__name__)

FIRST_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 30.0
# While blocked, the consume loop polls (all partitions paused) at least this often,
# far below max.poll.interval.ms, so the group does not drop this member.
BLOCKED_POLL_S = 1.0

# ClickHouse error codes that mean "this data", never "this server" (ErrorCodes.cpp).
DATA_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        25,  # CANNOT_PARSE_ESCAPE_SEQUENCE
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        469,  # VIOLATED_CONSTRAINT
    }
)
# What clickhouse-connect's client-side serialization lets escape for a bad value.
_SERIALIZATION_ERRORS = (
    TypeError,
    ValueError,
    AttributeError,
    OverflowError,
    KeyError,
    IndexError,
    struct.error,
)
_CODE = re.compile(r"\bCode:\s*(\d+)")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
MAX_ERROR_CHARS = 500


def refuses_data(exc: BaseException, *, from_hook: bool = False) -> bool:
    """True if `exc` means ClickHouse refuses these rows (quarantine them), False if
    ClickHouse is unavailable (retry); the rule is in the module docstring."""
    if isinstance(exc, OSError):
        return False
    if isinstance(exc, ch_errors.ClickHouseError):
        code = getattr(exc, "code", None)
        if code is None:
            found = _CODE.search(str(exc))
            code = int(found.group(1)) if found else None
        if code is not None:
            return code in DATA_ERROR_CODES
        return isinstance(exc, ch_errors.DataError)
    if from_hook:
        return True
    return isinstance(exc, _SERIALIZATION_ERRORS)


def error_text(exc: BaseException) -> str:
    """The error for a dead letter: type, message and cause, with quoted values blanked
    (ClickHouse quotes the data it could not parse; field errors never echo input)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return _QUOTED.sub("'…'", text)[:MAX_ERROR_CHARS]


class _Unavailable(Exception):
    """ClickHouse could not take a part of a batch for a reason that is not the data."""


class _HookFailed(Exception):
    """The table's before_insert hook raised on these rows (its __cause__ is classified)."""


class _GiveUp(Exception):
    """Stop retrying: the partitions are being revoked while ClickHouse is unavailable."""


@dataclass
class _Pending:
    rows: list[Row] = field(default_factory=list)
    # the record each row was built from (same index): coordinates, key, original bytes
    records: list[Any] = field(default_factory=list)
    # partition -> (first offset, last offset) of the records held (rows or not)
    ranges: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    # row ranges [lo, hi) still to write, the next one last; None before the first attempt
    todo: list[tuple[int, int]] | None = None
    refused: list[tuple[int, str]] = field(default_factory=list)  # (row index, error text)
    inserts: int = 0  # insert attempts that reached the write (for the log)

    def add(self, row: Row | None, tp: TopicPartition, msg: Any) -> None:
        if row is not None:
            self.rows.append(row)
            self.records.append(msg)
        first, _ = self.ranges.get(tp, (msg.offset, msg.offset))
        self.ranges[tp] = (first, msg.offset)

    def token(self, table: str) -> str:
        return _token(table, {(tp.topic, tp.partition): span for tp, span in self.ranges.items()})

    def part_token(self, table: str, lo: int, hi: int) -> str:
        """The batch token for the whole batch, else the offset ranges of rows[lo:hi]."""
        if (lo, hi) == (0, len(self.rows)):
            return self.token(table)
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for msg in self.records[lo:hi]:
            key = (msg.topic, msg.partition)
            a, b = spans.get(key, (msg.offset, msg.offset))
            spans[key] = (min(a, msg.offset), max(b, msg.offset))
        return _token(table, spans)


def _token(table: str, spans: dict[tuple[str, int], tuple[int, int]]) -> str:
    """Insert deduplication token: ``<table>|<topic>/<partition>/<first>-<last>,...``."""
    parts = sorted(f"{topic}/{partition}/{a}-{b}" for (topic, partition), (a, b) in spans.items())
    return f"{table}|" + ",".join(parts)


class _FlushOnRevoke(ConsumerRebalanceListener):
    def __init__(self, sink: ClickHouseSink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._sink.flush_before_revoke()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("sink assigned %d partitions", len(assigned))


# An early flush (caught up, batch not full nor old) waits this many times the
# last flush's duration after it: early flushes take at most ~1/(1 + this) of the time.
EARLY_FLUSH_SPACING = 9.0


class ClickHouseSink:
    def __init__(
        self,
        settings: Settings,
        tables: tuple[TableSpec, ...] = ALL_TABLES,
        store: ClickHouseStore | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.group_id = f"{settings.app_id}-sink"
        self.store = store
        self.tables = tables
        topics = T.Topics(settings)
        self._by_topic = {topics.name(t.source): t for t in tables}
        self._by_table = {t.table: t for t in tables}
        self._dlq_topic = topics.name(T.DLQ)
        self._pending: dict[str, _Pending] = defaultdict(_Pending)
        self._pending_since: float | None = None
        self._blocked_since: float | None = None  # first failed attempt of the pending batches
        self._clock = clock
        self._dlq_sends: list[asyncio.Future] = []
        self._flush_lock = asyncio.Lock()
        self._flushed_at = 0.0  # when the last flush ended (self._clock)
        self._flush_took = 0.0  # how long it took
        # set by a revoke: a flush waiting out an outage gives its batch up
        self._revoking = asyncio.Event()
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        metrics.SINK_BLOCKED.set_function(self.blocked_seconds)

    def blocked_seconds(self) -> float:
        """Seconds since the oldest pending batch could not be written; 0 when writing."""
        since = self._blocked_since
        return 0.0 if since is None else max(self._clock() - since, 0.0)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.store is None:
            self.store = await loop.run_in_executor(
                None, ClickHouseStore.from_settings, self.settings
            )
        await loop.run_in_executor(None, self.store.migrate)
        self._producer = kafka_clients.aio_producer(self.settings)
        self._consumer = kafka_clients.aio_consumer(
            self.settings,
            group_id=self.group_id,
            group_instance_id=self.settings.group_instance_id,
            auto_offset_reset="earliest",
            # contacts.routed and the DLQ are written in the voc loop's transactions:
            # an aborted batch (its worker killed mid-transaction) must not be stored.
            isolation_level="read_committed",
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
        """Consume and flush until `stop()`; started as a task by `start()`.

        Nothing is fetched while a flush runs: this loop awaits it, and while it
        waits out an outage it polls only with every partition paused. So the
        rows held are at most two polls' worth (< 2 x sink_batch_rows).
        """
        assert self._consumer is not None
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(
                timeout_ms=200, max_records=self.settings.sink_batch_rows
            )
            for tp, messages in batches.items():
                spec = self._by_topic[tp.topic]
                pending = self._pending[spec.table]
                for msg in messages:
                    pending.add(self._decode(spec, tp, msg), tp, msg)
                if self._pending_since is None and messages:
                    self._pending_since = self._clock()
            if await self._due():
                await self.flush(poll_while_blocked=True)

    async def _due(self) -> bool:
        """Flush a full batch, an old one, or, once every partition is read to its
        end, one at least `sink_flush_caught_up_seconds` old.

        Why the last: a batch waits for `sink_flush_seconds` only to grow, and a
        sink that has read everything there is will not grow it. Flushing then
        takes live traffic to the KPIs within a fraction of a second, while a
        backlog is still written in big batches (one insert per table costs the
        same for 10 rows as for 10,000).
        """
        if self._pending_since is None:
            return False
        rows = sum(len(p.rows) for p in self._pending.values())
        age = self._clock() - self._pending_since
        if rows >= self.settings.sink_batch_rows or age >= self.settings.sink_flush_seconds:
            return True
        if age < self.settings.sink_flush_caught_up_seconds:
            return False
        # An early flush costs the same whatever its size, and the stage loops share
        # this process: keep early flushes under a tenth of the time (measured, at
        # 1,000 events/s every 0.2 s took the raw -> department latency from ~1.2 s
        # to ~1.7 s p50).
        if self._clock() - self._flushed_at < EARLY_FLUSH_SPACING * self._flush_took:
            return False
        return await self._caught_up()

    async def _caught_up(self) -> bool:
        """Every assigned partition read up to its last stable offset (as of the last
        fetch: the sink reads read_committed)."""
        consumer = self._consumer
        assert consumer is not None
        try:
            for tp in consumer.assignment():
                end = consumer.last_stable_offset(tp)
                if end is None or await consumer.position(tp) < end:
                    return False
        except Exception:  # a rebalance took the partition meanwhile: not now
            return False
        return True

    def _decode(self, spec: TableSpec, tp: TopicPartition, msg) -> Row | None:  # type: ignore[no-untyped-def]
        try:
            return spec.to_row(msg.value, tp.partition, msg.offset)
        except ValueError as exc:
            metrics.SINK_REJECTS.labels(spec.source.name).inc()
            log.warning("sink: %s[%d]@%d undecodable: %s", tp.topic, tp.partition, msg.offset, exc)
            self._dead_letter(msg, "sink_decode", str(exc))
            return None
        except RowShapeError:
            raise
        except Exception as exc:  # the builder failed on this record: quarantine it
            self._quarantine(spec.table, msg, error_text(exc))
            return None

    def _dead_letter(self, msg: Any, kind: str, text: str) -> None:
        """Send a dead letter for `msg` (not for a record of the DLQ topic itself)."""
        if msg.topic == self._dlq_topic:
            return
        source = SourceRef.of(
            msg.topic, msg.partition, msg.offset, msg.key, getattr(msg, "timestamp", None)
        )
        letter = dead_letter(
            msg.value or b"",
            source,
            Reason.processing_error,
            [FieldError(loc="", type=kind, msg=text)],
            stage="sink",
        )
        assert self._producer is not None
        self._dlq_sends.append(
            asyncio.ensure_future(
                self._producer.send(self._dlq_topic, letter.model_dump_json().encode(), key=msg.key)
            )
        )

    def _quarantine(self, table: str, msg: Any, text: str) -> None:
        metrics.SINK_QUARANTINED.labels(table).inc()
        log.error(
            "sink: %s refuses %s[%d]@%d, quarantined%s: %s",
            table,
            msg.topic,
            msg.partition,
            msg.offset,
            "" if msg.topic != self._dlq_topic else " (a DLQ record: not dead-lettered again)",
            text,
        )
        self._dead_letter(msg, "sink_refused", text)

    async def flush(
        self, *, poll_while_blocked: bool = False, give_up_when_unavailable: bool = False
    ) -> None:
        """Write every pending batch (retrying while ClickHouse is unavailable,
        quarantining the rows it refuses), then commit the offsets.

        `poll_while_blocked` (the consume loop's own flush): wait out the backoff by
        polling with every partition paused, not by sleeping, so the group keeps
        this member through a long outage. `give_up_when_unavailable` (a revoke):
        do not retry; commit the tables written and leave the rest uncommitted for
        the partitions' next owner. A revoke also makes a flush that is waiting out
        an outage give up the same way (`flush_before_revoke`): a rebalance must
        not wait for ClickHouse, and aiokafka's poll waits for the rebalance.
        """
        async with self._flush_lock:
            started = self._clock()
            try:
                await self._flush_locked(poll_while_blocked, give_up_when_unavailable)
            finally:
                self._revoking.clear()
                if poll_while_blocked:
                    self._resume_all()
                self._flushed_at = self._clock()
                self._flush_took = self._flushed_at - started

    async def flush_before_revoke(self) -> None:
        """Write what is pending before the partitions go, unless ClickHouse is unavailable."""
        if self._flush_lock.locked():
            self._revoking.set()
        await self.flush(give_up_when_unavailable=True)

    async def _flush_locked(self, poll: bool, give_up: bool) -> None:
        if not self._pending:
            return
        written: list[_Pending] = []
        dropped: int | None = None  # rows left unwritten after a give-up
        for table, pending in list(self._pending.items()):
            if pending.rows and dropped is not None:
                dropped += len(pending.rows)
                continue
            if pending.rows:
                try:
                    await self._insert_with_retry(table, pending, poll, give_up)
                except _GiveUp:
                    dropped = len(pending.rows)
                    continue
            written.append(pending)
        if self._dlq_sends:
            for sent in await asyncio.gather(*self._dlq_sends):
                await sent
            self._dlq_sends.clear()
        offsets: dict[TopicPartition, int] = {}
        for pending in written:
            for tp, (_, last) in pending.ranges.items():
                offsets[tp] = max(offsets.get(tp, 0), last + 1)
        if offsets:
            crash_point("sink.after_insert")
            await self._commit(offsets)
        if dropped is not None:
            log.warning(
                "sink: partitions revoked while ClickHouse is unavailable: %d row(s) not "
                "written and not committed; their next owner reads them again",
                dropped,
            )
        self._pending.clear()
        self._pending_since = None
        if dropped is None:  # after a give-up the outage goes on: keep counting
            self._blocked_since = None

    def _resume_all(self) -> None:
        assert self._consumer is not None
        paused = self._consumer.paused()
        if paused:  # (reassigned meanwhile: a new assignment is not paused)
            with contextlib.suppress(IllegalStateError):
                self._consumer.resume(*paused)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit what this member still owns. A partition lost in a rebalance while
        ClickHouse was down is re-read by its new owner: its rows are in ClickHouse
        already, and a re-insert is dropped (same token) or collapses (FINAL)."""
        assert self._consumer is not None
        owned = self._consumer.assignment()
        mine = {tp: o for tp, o in offsets.items() if tp in owned}
        if len(mine) < len(offsets):
            log.warning(
                "sink: not committing %d partition(s) no longer assigned", len(offsets) - len(mine)
            )
        try:
            await self._consumer.commit(mine)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("sink: commit failed after a rebalance (%s); the rows are stored", exc)

    async def _insert_with_retry(
        self, table: str, pending: _Pending, poll: bool, give_up: bool
    ) -> None:
        spec = self._by_table[table]
        loop = asyncio.get_running_loop()
        delay = FIRST_RETRY_DELAY_S
        while True:
            try:
                await loop.run_in_executor(None, self._write, spec, pending)
            except _Unavailable as exc:
                cause = exc.__cause__ or exc
                metrics.SINK_FAILURES.labels(table).inc()
                if self._blocked_since is None:
                    self._blocked_since = self._clock()
                if give_up or self._revoking.is_set():
                    log.error("sink: insert into %s failed (%s)", table, str(cause)[:300])
                    raise _GiveUp from cause
                log.error(
                    "sink: insert into %s failed (%s); retrying in %.1fs",
                    table,
                    str(cause)[:300],
                    delay,
                )
                await self._wait(delay, poll)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
                continue
            break
        self._blocked_since = None  # written: what is still pending is not blocked (yet)
        if pending.refused:
            log.warning(
                "sink: %s: %d of %d row(s) refused, found in %d inserts",
                table,
                len(pending.refused),
                len(pending.rows),
                pending.inserts,
            )
        for index, text in pending.refused:
            self._quarantine(table, pending.records[index], text)

    def _write(self, spec: TableSpec, pending: _Pending) -> None:
        """On the writer thread: insert pending.todo's ranges, splitting refused ones.

        Raises _Unavailable with the range put back, so the next attempt resumes there.
        """
        if pending.todo is None:
            pending.todo = [(0, len(pending.rows))]
        while pending.todo:
            lo, hi = pending.todo.pop()
            started = time.perf_counter()
            try:
                self._insert(spec, pending, lo, hi)
            except Exception as exc:
                hook = isinstance(exc, _HookFailed)
                cause = exc.__cause__ if hook and exc.__cause__ is not None else exc
                if not refuses_data(cause, from_hook=hook):
                    pending.todo.append((lo, hi))
                    raise _Unavailable(str(cause)) from cause
                if hi - lo == 1:
                    self._forget(spec, pending, lo, hi)
                    pending.refused.append((lo, error_text(cause)))
                else:
                    mid = (lo + hi) // 2
                    pending.todo += [(mid, hi), (lo, mid)]
                continue
            metrics.SINK_FLUSH_SECONDS.labels(spec.table).observe(time.perf_counter() - started)
            metrics.SINK_BATCH_ROWS.labels(spec.table).observe(hi - lo)
            metrics.SINK_ROWS.labels(spec.table).inc(hi - lo)

    def _forget(self, spec: TableSpec, pending: _Pending, lo: int, hi: int) -> None:
        """A refused row will never be stored: its hook undoes what it wrote for it
        (LatestFactDeltas: the row's KPI deltas). A failure here is an outage."""
        forget = getattr(spec.before_insert, "forget", None)
        if forget is None:
            return
        try:
            forget(self.store, list(pending.rows[lo]), [list(r) for r in pending.rows[hi:]])
        except Exception as exc:
            pending.todo.append((lo, hi))
            raise _Unavailable(str(exc)) from exc

    def _insert(self, spec: TableSpec, pending: _Pending, lo: int, hi: int) -> None:
        assert self.store is not None
        pending.inserts += 1
        rows = pending.rows[lo:hi]
        if spec.before_insert is not None:
            try:
                rows = spec.before_insert(self.store, [list(r) for r in rows], self.settings)
            except Exception as exc:
                raise _HookFailed(spec.table) from exc
            if not rows:
                return  # every record of the range is stored already
        self.store.insert(spec.table, spec.columns, rows, pending.part_token(spec.table, lo, hi))

    async def _wait(self, seconds: float, poll: bool) -> None:
        """Back off for `seconds`, by polling with all partitions paused (`poll`) or by
        sleeping; raises _GiveUp as soon as a revoke asks for it."""
        consumer = self._consumer
        if not poll or consumer is None:
            try:
                await asyncio.wait_for(self._revoking.wait(), seconds)
            except TimeoutError:
                return
            raise _GiveUp
        end = self._clock() + seconds
        while (left := end - self._clock()) > 0:
            if self._revoking.is_set():
                raise _GiveUp
            owned = consumer.assignment()
            if owned:
                consumer.pause(*owned)
            slice_s = min(left, BLOCKED_POLL_S)
            try:
                # aiokafka's poll waits (without a timeout) while a rebalance runs
                got = await asyncio.wait_for(
                    consumer.getmany(timeout_ms=max(1, round(slice_s * 1000))), slice_s + 1.0
                )
            except TimeoutError:
                continue
            for tp, messages in got.items():  # assigned by a rebalance since the pause
                if messages:
                    consumer.seek(tp, messages[0].offset)
                consumer.pause(tp)

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

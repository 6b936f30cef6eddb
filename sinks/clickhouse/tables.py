"""Which topic feeds which ClickHouse table, and how one record becomes one row.

A builder gets the record value and its Kafka coordinates and returns the
row's values keyed by column name (`Named`), or raises ValueError for a record
it cannot decode. `TableSpec.to_row` turns that mapping into the positional
row clickhouse-connect inserts, picking the values in the spec's `columns`
order, the same tuple the insert names as its column list.

Why names and not positions: these tables are wide (routing_log has 31
columns, many of the same type), and a positional list must match the column
tuple and the DDL slot by slot; two swapped String or DateTime64 values would
be stored in each other's columns without any error. Built by name, a row and
its column list cannot disagree, and tests/unit/sinks/test_tables_ddl.py holds
each spec's names to the columns ClickHouse reports after the migrations.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from vocflow.schemas import AgentEvent, ContactEvent, DeadLetter, Resolution, RoutingEnvelope
from vocflow.schemas.source.shift import ShiftRecord
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.streams.core import topics as T
from vocflow.streams.kpi.config import kpi_targets
from vocflow.streams.kpi.contributions import (
    COUNTERS,
    DEFAULT_TARGETS,
    Rows,
    Targets,
    contributions,
)
from vocflow.streams.kpi.models import ContactFact, from_ms
from vocflow.streams.privacy.pii import mask_pii
from vocflow.streams.privacy.pseudonyms import safe_id

if TYPE_CHECKING:
    from vocflow.streams.core.settings import Settings

log = logging.getLogger(__name__)

# A row as inserted: values in `TableSpec.columns` order. A list, because
# `before_insert` hooks may set a value in place. A contact_facts row is only
# insertable after its hook (LatestFactDeltas) has set its `kpi_deltas`.
Row = list[Any]
# A row as a builder returns it: every inserted column by name, nothing else.
Named = dict[str, Any]


class BeforeInsert(Protocol):
    """A table's last step before a batch is inserted, on the sink's writer thread.

    It may read the store and set values in place; it runs again, on the same
    rows or on copies, when an insert is retried or split. `settings` are the
    sink's (None: the defaults).
    """

    def __call__(
        self, store: ClickHouseStore, rows: list[Row], settings: Settings | None = None, /
    ) -> list[Row]: ...


class RowShapeError(RuntimeError):
    """A builder's names differ from its spec's columns: a bug in this module.

    Deliberately not a ValueError: the sink dead-letters records whose builder
    raises ValueError (an undecodable record), while this must stop the sink
    before any row is written wrong, and fail the unit tests first.
    """


@dataclass(frozen=True)
class TableSpec:
    """One sink table: its source topic, its insert columns and its row builder.

    `columns` is the insert's column list, in the DDL's column order minus
    `server_filled` (columns the DDL fills with a DEFAULT, such as an ingest
    time); `build` returns exactly those names. Insert is by column name, so
    the order is not what makes a row correct; keeping it the DDL's order
    keeps the spec readable next to the .sql, and the DDL test checks both.
    """

    table: str
    source: T.TopicSpec
    columns: tuple[str, ...]
    build: Callable[[bytes, int, int], Named]
    # Runs on the sink's writer thread just before a batch is inserted.
    before_insert: BeforeInsert | None = None
    server_filled: tuple[str, ...] = ()
    # Picks a Named's values in `columns` order: one C-level call per row
    # (operator.itemgetter), so naming the values costs a dict, not a loop.
    _pick: Callable[[Named], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if repeated:
            raise ValueError(f"{self.table}: column(s) listed twice: {', '.join(repeated)}")
        if len(self.columns) == 1:  # itemgetter of one key returns the bare value
            only = self.columns[0]
            object.__setattr__(self, "_pick", lambda named: (named[only],))
        else:
            object.__setattr__(self, "_pick", itemgetter(*self.columns))

    def to_row(self, value: bytes, partition: int, offset: int) -> Row:
        """The record as a positional row in `columns` order; ValueError if undecodable.

        The builder's mapping must hold exactly the columns: a missing name
        fails the pick, and an extra one the size check (all columns present
        and the same count means the same set), so RowShapeError costs one
        len() on the happy path.
        """
        named = self.build(value, partition, offset)
        try:
            values = self._pick(named)
        except KeyError as exc:
            raise RowShapeError(f"{self.table}: builder gave no value for column {exc}") from None
        if len(named) != len(self.columns):
            extra = sorted(set(named) - set(self.columns))
            raise RowShapeError(f"{self.table}: builder gave unknown column(s) {extra}")
        return list(values)


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], value: bytes) -> M:
    """A topic's record as its model; a record that is not one fails its batch row clearly,
    without echoing the value (it may hold personal data)."""
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        article = "an" if model.__name__[0] in "AEIOU" else "a"
        raise ValueError(f"not {article} {model.__name__}: {exc.error_count()} error(s)") from None


def _contact_event_row(value: bytes, partition: int, offset: int) -> Named:
    e = _parse(ContactEvent, value)
    p = e.payload
    return {
        "event_id": e.event_id,
        "contact_id": e.contact_id,
        "customer_id": e.customer_id,
        "channel": e.channel.value,
        "event_type": e.event_type.value,
        "occurred_at": e.occurred_at,
        "queue": e.queue or "",
        "agent_id": e.agent_id,
        "text_chars": len(e.text or ""),
        "wait_seconds": p and p.wait_seconds,
        "talk_seconds": p and p.talk_seconds,
        "hold_seconds": p and p.hold_seconds,
        "after_work_seconds": p and p.after_work_seconds,
        "transfer_to": p and p.transfer_to,
        "csat": p and p.csat,
        "nps": p and p.nps,
        "fcr": p and p.fcr,
        "source": e.source,
        "schema_version": e.schema_version,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def _dead_letter_row(value: bytes, partition: int, offset: int) -> Named:
    d = _parse(DeadLetter, value)
    errors = orjson.dumps([e.model_dump() for e in d.errors]).decode()
    return {
        "reason": d.reason.value,
        "stage": d.stage,
        "errors": errors,
        "source_topic": d.source.topic,
        "source_partition": d.source.partition,
        "source_offset": d.source.offset,
        "original_size": d.original_size,
        "rejected_at": d.rejected_at,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def _routing_row(value: bytes, partition: int, offset: int) -> Named:
    r = _parse(RoutingEnvelope, value)
    t = r.tags
    return {
        "envelope_id": r.envelope_id,
        "contact_id": r.contact_id,
        "customer_id": r.customer_id,
        "channel": r.channel.value,
        "event_type": r.event_type.value,
        "queue": r.queue or "",
        "occurred_at": r.occurred_at,
        "routed_at": r.routed_at,
        "department": r.department,
        "business_type": t.business_type.value,
        "support_system": t.support_system.value,
        "bearer_network": t.bearer_network.value,
        "category": t.category.value,
        "urgency": t.urgency.value,
        "department_rule": t.department.rule_id,
        "category_rule": t.category.rule_id,
        "urgency_rule": t.urgency_rule_id,
        "sentiment": r.sentiment,
        "keywords": r.keywords,
        "language": r.language,
        "text": r.text,
        "customer_tier": r.customer_tier.value if r.customer_tier else "",
        "customer_city": r.customer_city or "",
        "customer_known": r.customer_known,
        "repeat_contact": r.repeat_contact,
        "previous_contact_id": r.previous_contact_id,
        "sla_due_at": r.sla_due_at,
        "rules_version": r.rules_version,
        "reason": r.reason,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def _resolution_row(value: bytes, partition: int, offset: int) -> Named:
    r = _parse(Resolution, value)
    note = mask_pii(r.note)[0] if r.note else ""
    return {
        "event_id": r.event_id,
        "contact_id": r.contact_id,
        "department": r.department,
        "outcome": r.outcome.value,
        "resolved_at": r.resolved_at,
        "note": note,
        "source": r.source,
        "reassigned_to": r.reassigned_to or "",
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def _fact_row(value: bytes, partition: int, offset: int) -> Named:
    try:
        data = orjson.loads(value)
        # The worker's own delta is not used: the sink computes it against what
        # it has stored (LatestFactDeltas). Older and newer workers both work.
        data.pop("kpi_deltas", None)
        f = ContactFact.from_dict(data)
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a contact fact: {exc}") from None
    last = f.last_activity_ms
    if last is None:
        raise ValueError("contact fact without any event time")

    def at(ms: int | None) -> datetime | None:
        return from_ms(ms) if ms is not None else None

    return {
        "contact_id": f.contact_id,
        "version": f.version,
        "channel": f.channel or "",
        "queue": f.queue or "",
        "first_queue": f.first_queue or "",
        "department": f.department or "",
        "category": f.category or "",
        "agent_id": f.agent_id,
        "customer_id": f.customer_id,
        "arrival_at": at(f.arrival_ms),
        "offered_at": at(f.offered_ms),
        "wait_start_at": at(f.wait_start_ms),
        "left_queue_at": at(f.left_queue_ms),
        "received_at": at(f.received_ms),
        "first_response_at": at(f.first_response_ms),
        "resolved_at": at(f.resolved_ms),
        "answered": f.is_answered,
        "abandoned": f.is_abandoned,
        "short_abandon": f.short_abandon,
        "wait_seconds": f.wait_ms / 1000 if f.wait_ms is not None else None,
        "handle_seconds": f.handle_ms / 1000,
        "transfers": f.transfers,
        "csat": f.csat,
        "nps": f.nps,
        "last_activity_at": from_ms(last),
        "fact": orjson.dumps(data).decode(),
        # The parsed fact, until LatestFactDeltas replaces it with the row's
        # delta (it would parse `fact` again otherwise: most of its cost).
        "kpi_deltas": f,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


# Which stored row a contact's latest fact is: (version, kafka_partition, kafka_offset).
# The same coordinates mean the same facts-topic record, so the same fact.
_Identity = tuple[int, int, int]


class LatestFactDeltas:
    """The `before_insert` hook of contact_facts: account for each new fact record's
    KPI deltas *before* the fact is inserted, so that `kpi_minutes` (a view summing
    `kpi_deltas`) always holds exactly the contributions of the latest stored fact
    of every contact, through a sink killed at any point.

    The latest stored fact of a contact is what `contact_facts FINAL` returns: the
    highest version, and among rows of that version the last inserted. A record
    whose version is at least the latest's becomes the latest: its delta is
    contributions(record) - contributions(latest before it), in the batch or
    stored, nothing counting as nothing. A record below the latest changes nothing.

    Accounting, in this order, for each record not accounted yet: its delta cells
    into `kpi_deltas` (keyed by the record's identity: a copy written again by a
    retry replaces itself), then its mark into `kpi_accounted`, then (by the sink)
    the fact into `contact_facts`. A record read again later (a sink killed between
    any two of these inserts, or before its offsets were committed) is found
    marked and is never computed again: a new computation would be made against
    a different "latest" and replace the first one's cells, which the sums rely on.
    Its fact is inserted again only if its Kafka offset is past the contact's
    latest stored fact (its insert never landed); otherwise not, since a record
    inserted again would become the last inserted of its version. Until this
    design a materialized view summed the deltas after the fact insert, and a
    process killed between the two parts lost them (docs/reliability.md).

    The worker's own delta is not used: after a kill the worker may re-emit a
    version with other content, emit versions below the stored ones, or lose a
    department and regain it later.

    Cost: two small queries per batch (the stored latest identity of its contacts,
    their marked records) and one insert each into kpi_deltas and kpi_accounted.
    A stored fact is read and parsed only when the process does not remember that
    record's contributions (`remembered` contacts, about 850 bytes each, keyed by
    the record's identity: a miss, never a wrong delta). Calls take turns (a lock).
    """

    def __init__(self, remembered: int = 20_000) -> None:
        self.remembered = remembered
        # contact -> (identity of a stored or inserted record, its contributions)
        self._known: OrderedDict[str, tuple[_Identity, Rows]] = OrderedDict()
        self._scope: tuple[str, str, Targets] | None = None  # (dsn, database, targets)
        self._warned = False
        self._lock = threading.Lock()
        # Told of every batch of delta cells stored (None: deltas were withdrawn),
        # under the store's lock, in the order stored: the live KPIs (sinks/kpi/live.py).
        self.listeners: list[Callable[[ClickHouseStore, list[list[Any]] | None], None]] = []

    def __call__(
        self, store: ClickHouseStore, rows: list[Row], settings: Settings | None = None, /
    ) -> list[Row]:
        """The rows to insert (each with its `kpi_deltas` set), after accounting."""
        if not rows:
            return rows
        with self._lock:
            targets = self._targets(settings)
            if self._scope != (store.dsn, store.database, targets):
                self._known.clear()
                self._scope = (store.dsn, store.database, targets)
            return self._account(store, rows, targets)

    def forget(self, store: ClickHouseStore, row: Row, following: list[Row]) -> None:
        """`row` was refused and will never be stored: zero and unmark its deltas, and
        those of its contact's records after it in `following`, which were computed
        against it; they are accounted again when their inserts are retried."""
        with self._lock:
            cid, offset = row[I_ID], row[I_OFFSET]
            records = [_record_of(row)] + [
                _record_of(r) for r in following if r[I_ID] == cid and r[I_OFFSET] > offset
            ]
            db = store.database
            cells = store.query(
                "SELECT minute, queue, channel, department, contact_id, version, "
                f"kafka_partition, kafka_offset FROM {db}.kpi_deltas FINAL "
                "PREWHERE contact_id = {cid:String} "
                "WHERE (version, kafka_partition, kafka_offset) IN {ids:Array(Tuple("
                "UInt32, UInt32, UInt64))}",
                {"cid": cid, "ids": [r[1:] for r in records]},
            )
            if cells:
                zeros = [0] * len(COUNTERS)
                with store.lock:
                    _insert_kpi(store, "kpi_deltas", [[*c, *zeros] for c in cells])
                    self._tell(store, None)
            _insert_kpi(store, "kpi_accounted", [[*r, 0] for r in records])
            self._known.pop(cid, None)

    def _account(self, store: ClickHouseStore, rows: list[Row], targets: Targets) -> list[Row]:
        db = store.database
        ids = list({r[I_ID] for r in rows})
        stored: dict[str, _Identity] = {
            cid: (version, partition, offset)
            for cid, version, partition, offset in store.query(
                "SELECT contact_id, version, kafka_partition, kafka_offset "
                f"FROM {db}.contact_facts FINAL PREWHERE contact_id IN {{ids:Array(String)}}",
                {"ids": ids},
            )
        }
        marked: set[_Record] = {
            (cid, version, partition, offset)
            for cid, version, partition, offset in store.query(
                "SELECT contact_id, version, kafka_partition, kafka_offset "
                f"FROM {db}.kpi_accounted FINAL PREWHERE contact_id IN {{ids:Array(String)}} "
                "WHERE accounted = 1",
                {"ids": ids},
            )
        }
        known = self._known
        # Stored facts whose contributions a new record's delta needs, not remembered.
        wanted = {
            r[I_ID]
            for r in rows
            if (at := stored.get(r[I_ID])) is not None
            and _record_of(r) not in marked
            and r[I_VERSION] >= at[0]
            and _identity_of(r) != at
            and (known.get(r[I_ID]) or (None,))[0] != at
        }
        if wanted:
            for cid, version, partition, offset, fact in store.query(
                "SELECT contact_id, version, kafka_partition, kafka_offset, fact "
                f"FROM {db}.contact_facts FINAL PREWHERE contact_id IN {{ids:Array(String)}}",
                {"ids": list(wanted)},
            ):
                parsed = ContactFact.from_dict(orjson.loads(fact))
                known[cid] = ((version, partition, offset), contributions(parsed, targets))
        minutes: dict[int, datetime] = {}
        latest: dict[str, tuple[_Identity, Rows]] = {}
        out: list[Row] = []
        cells: list[list[Any]] = []
        marks: list[list[Any]] = []
        for row in rows:
            cid = row[I_ID]
            mine = _identity_of(row)
            record = (cid, *mine)
            current = latest.get(cid)
            at = current[0] if current is not None else stored.get(cid)
            if record in marked:
                # Accounted before; insert the fact only if its insert never landed.
                row[I_DELTAS] = []
                if at is None or mine[2] > at[2]:
                    out.append(row)
                    if at is None or mine[0] >= at[0]:
                        latest[cid] = (mine, contributions(_fact_of(row), targets))
                continue
            marks.append([*record, 1])
            if at is not None and (mine[0] < at[0] or mine == at):
                row[I_DELTAS] = []  # below the latest (changes nothing), or that very record
                if mine != at:
                    out.append(row)
                continue
            before = current[1] if current is not None else (known[cid][1] if at else {})
            after = contributions(_fact_of(row), targets)
            row[I_DELTAS] = _difference(after, before, minutes)
            for minute, queue, channel, department, counts in row[I_DELTAS]:
                cells.append([minute, queue, channel, department, *record, *counts])
            latest[cid] = (mine, after)
            out.append(row)
        if cells:
            with store.lock:
                _insert_kpi(store, "kpi_deltas", cells)
                self._tell(store, cells)
        if marks:
            _insert_kpi(store, "kpi_accounted", marks)
        for cid, entry in latest.items():
            known[cid] = entry
            known.move_to_end(cid)
        while len(known) > self.remembered:
            known.popitem(last=False)
        return out

    def _tell(self, store: ClickHouseStore, cells: list[list[Any]] | None) -> None:
        for listener in self.listeners:
            try:
                listener(store, cells)
            except Exception:  # advisory: the stored deltas are what counts
                log.exception("a KPI delta listener failed")

    def _targets(self, settings: Settings | None) -> Targets:
        if settings is not None:
            return kpi_targets(settings)
        if not self._warned:
            self._warned = True
            log.warning(
                "contact_facts: the sink passed no settings; KPI deltas use the default "
                "service-level thresholds (%.0f s, none per queue)",
                DEFAULT_TARGETS.sl_threshold_ms / 1000,
            )
        return DEFAULT_TARGETS


_Record = tuple[str, int, int, int]  # contact, version, Kafka partition, offset
KPI_COLUMNS = {
    "kpi_deltas": (
        "minute",
        "queue",
        "channel",
        "department",
        "contact_id",
        "version",
        "kafka_partition",
        "kafka_offset",
        *COUNTERS,
    ),
    "kpi_accounted": ("contact_id", "version", "kafka_partition", "kafka_offset", "accounted"),
}


def _identity_of(row: Row) -> _Identity:
    return (row[I_VERSION], row[I_PARTITION], row[I_OFFSET])


def _record_of(row: Row) -> _Record:
    return (row[I_ID], row[I_VERSION], row[I_PARTITION], row[I_OFFSET])


def _fact_of(row: Row) -> ContactFact:
    """The row's fact: parsed by `to_row` (kept in the deltas slot until the hook
    sets them), or parsed again from its JSON for a row the hook has seen before."""
    parsed = row[I_DELTAS]
    if isinstance(parsed, ContactFact):
        return parsed
    return ContactFact.from_dict(orjson.loads(row[I_FACT]))


def _insert_kpi(store: ClickHouseStore, table: str, rows: list[list[Any]]) -> None:
    """One insert into kpi_deltas or kpi_accounted. A new token every time: a retry
    writes the same keys again, and the table (ReplacingMergeTree) keeps one copy;
    a content token would drop a legitimate rewrite (zeros, then the same values)."""
    store.insert(table, KPI_COLUMNS[table], rows, f"{table}|{uuid.uuid4().hex}")


def _difference(
    after: Rows, before: Rows, minutes: dict[int, datetime]
) -> list[tuple[datetime, str, str, str, list[int]]]:
    """after - before as `kpi_deltas` values, without all-zero cells, sorted."""
    cells = {key: list(counts) for key, counts in after.items()}
    for key, counts in before.items():
        cell = cells.get(key)
        if cell is None:
            cells[key] = [-n for n in counts]
        else:
            for i, n in enumerate(counts):
                cell[i] -= n
    out = []
    for (minute, queue, channel, department), counts in sorted(cells.items()):
        if any(counts):
            at = minutes.get(minute)
            if at is None:
                at = minutes[minute] = from_ms(minute)
            out.append((at, queue, channel, department, counts))
    return out


def _agent_event_row(value: bytes, partition: int, offset: int) -> Named:
    a = _parse(AgentEvent, value)
    # Same pseudonyms as normalize gives contact events, so the ids still join.
    return {
        "event_id": safe_id(a.event_id),
        "agent_id": safe_id(a.agent_id),
        "team": a.team or "",
        "state": a.state.value,
        "reason": a.reason or "",
        "contact_id": safe_id(a.contact_id) if a.contact_id is not None else None,
        "occurred_at": a.occurred_at,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def _shift_row(value: bytes, partition: int, offset: int) -> Named:
    s = _parse(ShiftRecord, value)
    return {
        "agent_id": safe_id(s.agent_id),
        "team": s.team or "",
        "start": s.start,
        "end": s.end,
        "activity": s.activity,
        "published_at": s.published_at,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


CONTACT_EVENTS = TableSpec(
    "contact_events",
    T.EVENTS,
    (
        "event_id",
        "contact_id",
        "customer_id",
        "channel",
        "event_type",
        "occurred_at",
        "queue",
        "agent_id",
        "text_chars",
        "wait_seconds",
        "talk_seconds",
        "hold_seconds",
        "after_work_seconds",
        "transfer_to",
        "csat",
        "nps",
        "fcr",
        "source",
        "schema_version",
        "kafka_partition",
        "kafka_offset",
    ),
    _contact_event_row,
    server_filled=("ingested_at",),
)
DEAD_LETTERS = TableSpec(
    "dead_letters",
    T.DLQ,
    (
        "reason",
        "stage",
        "errors",
        "source_topic",
        "source_partition",
        "source_offset",
        "original_size",
        "rejected_at",
        "kafka_partition",
        "kafka_offset",
    ),
    _dead_letter_row,
)

ROUTING_LOG = TableSpec(
    "routing_log",
    T.ROUTED,
    (
        "envelope_id",
        "contact_id",
        "customer_id",
        "channel",
        "event_type",
        "queue",
        "occurred_at",
        "routed_at",
        "department",
        "business_type",
        "support_system",
        "bearer_network",
        "category",
        "urgency",
        "department_rule",
        "category_rule",
        "urgency_rule",
        "sentiment",
        "keywords",
        "language",
        "text",
        "customer_tier",
        "customer_city",
        "customer_known",
        "repeat_contact",
        "previous_contact_id",
        "sla_due_at",
        "rules_version",
        "reason",
        "kafka_partition",
        "kafka_offset",
    ),
    _routing_row,
)
RESOLUTIONS = TableSpec(
    "resolutions",
    T.RESOLUTIONS,
    (
        "event_id",
        "contact_id",
        "department",
        "outcome",
        "resolved_at",
        "note",
        "source",
        "reassigned_to",
        "kafka_partition",
        "kafka_offset",
    ),
    _resolution_row,
)

CONTACT_FACTS = TableSpec(
    "contact_facts",
    T.FACTS,
    (
        "contact_id",
        "version",
        "channel",
        "queue",
        "first_queue",
        "department",
        "category",
        "agent_id",
        "customer_id",
        "arrival_at",
        "offered_at",
        "wait_start_at",
        "left_queue_at",
        "received_at",
        "first_response_at",
        "resolved_at",
        "answered",
        "abandoned",
        "short_abandon",
        "wait_seconds",
        "handle_seconds",
        "transfers",
        "csat",
        "nps",
        "last_activity_at",
        "fact",
        "kpi_deltas",
        "kafka_partition",
        "kafka_offset",
    ),
    _fact_row,
    LatestFactDeltas(),
)
_FACT_COLUMNS = CONTACT_FACTS.columns
I_ID, I_VERSION, I_FACT, I_DELTAS, I_PARTITION, I_OFFSET = (
    _FACT_COLUMNS.index(c)
    for c in ("contact_id", "version", "fact", "kpi_deltas", "kafka_partition", "kafka_offset")
)
AGENT_EVENTS = TableSpec(
    "agent_events",
    T.AGENTS,
    (
        "event_id",
        "agent_id",
        "team",
        "state",
        "reason",
        "contact_id",
        "occurred_at",
        "kafka_partition",
        "kafka_offset",
    ),
    _agent_event_row,
)
AGENT_SHIFTS = TableSpec(
    "agent_shifts",
    T.SHIFTS,
    (
        "agent_id",
        "team",
        "start",
        "end",
        "activity",
        "published_at",
        "kafka_partition",
        "kafka_offset",
    ),
    _shift_row,
)

ALL: tuple[TableSpec, ...] = (
    CONTACT_EVENTS,
    DEAD_LETTERS,
    ROUTING_LOG,
    RESOLUTIONS,
    CONTACT_FACTS,
    AGENT_EVENTS,
    AGENT_SHIFTS,
)

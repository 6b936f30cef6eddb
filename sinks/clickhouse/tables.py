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

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from vocflow.schemas import AgentEvent, ContactEvent, DeadLetter, Resolution, RoutingEnvelope
from vocflow.schemas.source.shift import ShiftRecord
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.streams.core import topics as T
from vocflow.streams.kpi.models import ContactFact, from_ms
from vocflow.streams.privacy.pii import mask_pii
from vocflow.streams.privacy.pseudonyms import safe_id

# A row as inserted: values in `TableSpec.columns` order. A list, because
# `before_insert` hooks may blank a value in place (strip_stored_deltas).
Row = list[Any]
# A row as a builder returns it: every inserted column by name, nothing else.
Named = dict[str, Any]


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
    before_insert: Callable[[ClickHouseStore, list[Row]], list[Row]] | None = None
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
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def _fact_row(value: bytes, partition: int, offset: int) -> Named:
    try:
        data = orjson.loads(value)
        deltas = data.pop("kpi_deltas", [])
        f = ContactFact.from_dict(data)
        kpi_deltas = [
            (from_ms(minute), queue, channel, department, counters)
            for minute, queue, channel, department, counters in deltas
        ]
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
        "kpi_deltas": kpi_deltas,
        "kafka_partition": partition,
        "kafka_offset": offset,
    }


def strip_stored_deltas(store: ClickHouseStore, rows: list[Row]) -> list[Row]:
    """Keep the KPI deltas of each (contact_id, version) only the first time it
    is stored. The worker may emit a fact version twice (at-least-once), and the
    sink may re-read a batch after a crash with other batch boundaries (so another
    dedup token); without this the 1-minute aggregates would count those deltas
    twice. Versions of a contact reach the sink in order (one key, one
    partition), so a stored version >= v means v's delta is already counted;
    merges keep only the latest version, which is why "stored" means "max".
    The rows are positional by now, so the slots are found by column name."""
    columns = CONTACT_FACTS.columns
    i_id, i_version = columns.index("contact_id"), columns.index("version")
    i_deltas = columns.index("kpi_deltas")
    carrying = [r for r in rows if r[i_deltas]]
    if not carrying:
        return rows
    latest: dict[str, int] = dict(
        store.query(
            f"SELECT contact_id, max(version) FROM {store.database}.contact_facts "
            "WHERE contact_id IN {ids:Array(String)} GROUP BY contact_id",
            {"ids": list({r[i_id] for r in carrying})},
        )
    )
    for row in carrying:
        cid, version = row[i_id], row[i_version]
        if version <= latest.get(cid, 0):
            row[i_deltas] = []
        else:
            latest[cid] = version
    return rows


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
    strip_stored_deltas,
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

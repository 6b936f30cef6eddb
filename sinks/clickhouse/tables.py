"""Which topic feeds which ClickHouse table, and how one record becomes one row.

A row function gets the record value and its Kafka coordinates and returns
the row, or raises ValueError for a record it cannot decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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

Row = list[Any]


@dataclass(frozen=True)
class TableSpec:
    table: str
    source: T.TopicSpec
    columns: tuple[str, ...]
    to_row: Callable[[bytes, int, int], Row]
    # Runs on the sink's writer thread just before a batch is inserted.
    before_insert: Callable[[ClickHouseStore, list[Row]], list[Row]] | None = None


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], value: bytes) -> M:
    """A topic's record as its model; a record that is not one fails its batch row clearly,
    without echoing the value (it may hold personal data)."""
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        article = "an" if model.__name__[0] in "AEIOU" else "a"
        raise ValueError(f"not {article} {model.__name__}: {exc.error_count()} error(s)") from None


def _contact_event_row(value: bytes, partition: int, offset: int) -> Row:
    e = _parse(ContactEvent, value)
    p = e.payload
    return [
        e.event_id,
        e.contact_id,
        e.customer_id,
        e.channel.value,
        e.event_type.value,
        e.occurred_at,
        e.queue or "",
        e.agent_id,
        len(e.text or ""),
        p and p.wait_seconds,
        p and p.talk_seconds,
        p and p.hold_seconds,
        p and p.after_work_seconds,
        p and p.transfer_to,
        p and p.csat,
        p and p.nps,
        p and p.fcr,
        e.source,
        e.schema_version,
        partition,
        offset,
    ]


def _dead_letter_row(value: bytes, partition: int, offset: int) -> Row:
    d = _parse(DeadLetter, value)
    errors = orjson.dumps([e.model_dump() for e in d.errors]).decode()
    return [
        d.reason.value,
        d.stage,
        errors,
        d.source.topic,
        d.source.partition,
        d.source.offset,
        d.original_size,
        d.rejected_at,
        partition,
        offset,
    ]


def _routing_row(value: bytes, partition: int, offset: int) -> Row:
    r = _parse(RoutingEnvelope, value)
    t = r.tags
    return [
        r.envelope_id,
        r.contact_id,
        r.customer_id,
        r.channel.value,
        r.event_type.value,
        r.queue or "",
        r.occurred_at,
        r.routed_at,
        r.department,
        t.business_type.value,
        t.support_system.value,
        t.bearer_network.value,
        t.category.value,
        t.urgency.value,
        t.department.rule_id,
        t.category.rule_id,
        t.urgency_rule_id,
        r.sentiment,
        r.keywords,
        r.language,
        r.text,
        r.customer_tier.value if r.customer_tier else "",
        r.customer_city or "",
        r.customer_known,
        r.repeat_contact,
        r.previous_contact_id,
        r.sla_due_at,
        r.rules_version,
        r.reason,
        partition,
        offset,
    ]


def _resolution_row(value: bytes, partition: int, offset: int) -> Row:
    r = _parse(Resolution, value)
    note = mask_pii(r.note)[0] if r.note else ""
    return [
        r.event_id,
        r.contact_id,
        r.department,
        r.outcome.value,
        r.resolved_at,
        note,
        r.source,
        partition,
        offset,
    ]


def _fact_row(value: bytes, partition: int, offset: int) -> Row:
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

    return [
        f.contact_id,
        f.version,
        f.channel or "",
        f.queue or "",
        f.first_queue or "",
        f.department or "",
        f.category or "",
        f.agent_id,
        f.customer_id,
        at(f.arrival_ms),
        at(f.offered_ms),
        at(f.wait_start_ms),
        at(f.left_queue_ms),
        at(f.received_ms),
        at(f.first_response_ms),
        at(f.resolved_ms),
        f.is_answered,
        f.is_abandoned,
        f.short_abandon,
        f.wait_ms / 1000 if f.wait_ms is not None else None,
        f.handle_ms / 1000,
        f.transfers,
        f.csat,
        f.nps,
        from_ms(last),
        orjson.dumps(data).decode(),
        kpi_deltas,
        partition,
        offset,
    ]


def strip_stored_deltas(store: ClickHouseStore, rows: list[Row]) -> list[Row]:
    """Keep the KPI deltas of each (contact_id, version) only the first time it
    is stored. The worker may emit a fact version twice (at-least-once), and the
    sink may re-read a batch after a crash with other batch boundaries (so another
    dedup token); without this the 1-minute aggregates would count those deltas
    twice. Versions of a contact reach the sink in order (one key, one
    partition), so a stored version >= v means v's delta is already counted;
    merges keep only the latest version, which is why "stored" means "max"."""
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


def _agent_event_row(value: bytes, partition: int, offset: int) -> Row:
    a = _parse(AgentEvent, value)
    # Same pseudonyms as normalize gives contact events, so the ids still join.
    return [
        safe_id(a.event_id),
        safe_id(a.agent_id),
        a.team or "",
        a.state.value,
        a.reason or "",
        safe_id(a.contact_id) if a.contact_id is not None else None,
        a.occurred_at,
        partition,
        offset,
    ]


def _shift_row(value: bytes, partition: int, offset: int) -> Row:
    s = _parse(ShiftRecord, value)
    return [
        safe_id(s.agent_id),
        s.team or "",
        s.start,
        s.end,
        s.activity,
        s.published_at,
        partition,
        offset,
    ]


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

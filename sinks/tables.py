"""Which topic feeds which ClickHouse table, and how one record becomes one row.

A row function gets the record value and its Kafka coordinates and returns
the row, or raises ValueError for a record it cannot decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from vocflow.schemas import AgentEvent, ContactEvent, DeadLetter, Resolution, RoutingEnvelope
from vocflow.streams import topics as T
from vocflow.streams.kpi.models import ContactFact, from_ms
from vocflow.streams.pii import mask_pii

Row = list[Any]


@dataclass(frozen=True)
class TableSpec:
    table: str
    source: T.TopicSpec
    columns: tuple[str, ...]
    to_row: Callable[[bytes, int, int], Row]


def _contact_event_row(value: bytes, partition: int, offset: int) -> Row:
    try:
        e = ContactEvent.model_validate_json(value)
    except ValidationError as exc:
        raise ValueError(f"not a ContactEvent: {exc.error_count()} error(s)") from None
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
    try:
        d = DeadLetter.model_validate_json(value)
    except ValidationError as exc:
        raise ValueError(f"not a DeadLetter: {exc.error_count()} error(s)") from None
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
    try:
        r = RoutingEnvelope.model_validate_json(value)
    except ValidationError as exc:
        raise ValueError(f"not a RoutingEnvelope: {exc.error_count()} error(s)") from None
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
    try:
        r = Resolution.model_validate_json(value)
    except ValidationError as exc:
        raise ValueError(f"not a Resolution: {exc.error_count()} error(s)") from None
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
        f = ContactFact.from_dict(data)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"not a contact fact: {exc}") from None
    last = f.last_activity_ms
    if last is None:
        raise ValueError("contact fact without any event time")
    arrival = f.arrival_ms
    return [
        f.contact_id,
        f.version,
        f.channel or "",
        f.queue or "",
        f.first_queue or "",
        f.agent_id,
        f.customer_id,
        from_ms(arrival) if arrival is not None else None,
        f.is_answered,
        f.is_abandoned,
        f.short_abandon,
        f.wait_ms / 1000 if f.wait_ms is not None else None,
        f.handle_ms / 1000,
        f.transfers,
        f.csat,
        f.nps,
        from_ms(last),
        value.decode(),
        partition,
        offset,
    ]


def _agent_event_row(value: bytes, partition: int, offset: int) -> Row:
    try:
        a = AgentEvent.model_validate_json(value)
    except ValidationError as exc:
        raise ValueError(f"not an AgentEvent: {exc.error_count()} error(s)") from None
    return [
        a.event_id,
        a.agent_id,
        a.team or "",
        a.state.value,
        a.reason or "",
        a.contact_id,
        a.occurred_at,
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
        "agent_id",
        "customer_id",
        "arrival_at",
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
        "kafka_partition",
        "kafka_offset",
    ),
    _fact_row,
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

ALL: tuple[TableSpec, ...] = (
    CONTACT_EVENTS,
    DEAD_LETTERS,
    ROUTING_LOG,
    RESOLUTIONS,
    CONTACT_FACTS,
    AGENT_EVENTS,
)

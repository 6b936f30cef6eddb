"""Routed items and department answers as the sink stores them (`routing_log`,
`resolutions`), for the misroute-rate and backlog tests: built from the wire models' JSON and
through the sink's own row functions, so the rows are the ones production writes."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import RESOLUTIONS, ROUTING_LOG


def envelope(
    contact: str,
    department: str,
    routed_at: datetime,
    channel: str = "email",
    queue: str | None = None,
    due: datetime | None = None,
) -> bytes:
    """A routing envelope of ``contact`` to ``department`` at ``routed_at``, its SLA
    due at ``due`` (default: 24 hours later)."""
    return orjson.dumps(
        {
            "envelope_id": f"env-{contact}-{department}",
            "contact_id": contact,
            "channel": channel,
            "event_type": "received",
            "queue": queue,
            "occurred_at": routed_at.isoformat(),
            "routed_at": routed_at.isoformat(),
            "department": department,
            "text": "发票怎么开",
            "language": "zh",
            "keywords": ["发票"],
            "sentiment": 0.0,
            "customer_known": False,
            "repeat_contact": False,
            "tags": {
                "business_type": {"value": "billing", "rule_id": "r1"},
                "support_system": {"value": "none", "rule_id": "default"},
                "bearer_network": {"value": "none", "rule_id": "default"},
                "department": {"value": department, "rule_id": "r1"},
                "category": {"value": "invoice", "rule_id": "r1"},
                "urgency": "P3",
                "urgency_rule_id": "r1",
            },
            "reason": "r",
            "sla_due_at": (due or routed_at + timedelta(hours=24)).isoformat(),
            "rules_version": "v1",
        }
    )


def answer(
    event_id: str, contact: str, department: str, at: datetime, reassigned_to: str | None
) -> bytes:
    """``department``'s answer on ``contact``: "not ours -> reassigned_to", or resolved."""
    return orjson.dumps(
        {
            "event_id": event_id,
            "contact_id": contact,
            "department": department,
            "outcome": "reassigned" if reassigned_to else "resolved",
            "reassigned_to": reassigned_to,
            "resolved_at": at.isoformat(),
            "source": "test",
        }
    )


def store_routings(
    store: ClickHouseStore, envelopes: list[bytes], answers: list[bytes], token: str
) -> None:
    """Insert both through the sink's row functions (one batch each)."""
    if envelopes:
        rows = [ROUTING_LOG.to_row(e, 0, i) for i, e in enumerate(envelopes)]
        store.insert(ROUTING_LOG.table, ROUTING_LOG.columns, rows, token=f"{token}-routed")
    if answers:
        rows = [RESOLUTIONS.to_row(a, 0, i) for i, a in enumerate(answers)]
        store.insert(RESOLUTIONS.table, RESOLUTIONS.columns, rows, token=f"{token}-answers")

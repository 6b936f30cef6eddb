"""Open and overdue routed items, judged at the caller's clock (never ClickHouse's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import ROUTING_LOG
from vocflow.sinks.kpi.backlog import backlog

pytestmark = pytest.mark.clock

# Recent, so the table's TTL keeps the rows; whole hours, so nothing depends on the hour.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)


def envelope(contact: str, department: str, due: datetime) -> bytes:
    return orjson.dumps(
        {
            "envelope_id": f"env-{contact}",
            "contact_id": contact,
            "channel": "email",
            "event_type": "received",
            "occurred_at": BASE.isoformat(),
            "routed_at": BASE.isoformat(),
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
            "sla_due_at": due.isoformat(),
            "rules_version": "v1",
        }
    )


def test_overdue_is_judged_at_the_given_instant(store: ClickHouseStore) -> None:
    rows = [
        ROUTING_LOG.to_row(envelope("c1", "billing", BASE + timedelta(hours=4)), 0, 0),
        ROUTING_LOG.to_row(envelope("c2", "billing", BASE + timedelta(hours=24)), 0, 1),
        ROUTING_LOG.to_row(envelope("c3", "network", BASE + timedelta(hours=24)), 0, 2),
    ]
    store.insert(ROUTING_LOG.table, ROUTING_LOG.columns, rows, token="t1")
    assert backlog(store, BASE + timedelta(hours=1)) == {
        "billing": {"open": 2, "overdue": 0},
        "network": {"open": 1, "overdue": 0},
    }
    assert backlog(store, BASE + timedelta(hours=5)) == {
        "billing": {"open": 2, "overdue": 1},
        "network": {"open": 1, "overdue": 0},
    }
    # Days later by the caller's clock, whatever ClickHouse's own clock says.
    assert backlog(store, BASE + timedelta(days=2)) == {
        "billing": {"open": 2, "overdue": 2},
        "network": {"open": 1, "overdue": 1},
    }

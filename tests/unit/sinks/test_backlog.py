"""Open and overdue routed items, judged at the caller's clock (never ClickHouse's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.sinks import routings
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.clickhouse.tables import ROUTING_LOG
from vocflow.sinks.kpi.backlog import backlog

pytestmark = pytest.mark.clock

# Recent, so the table's TTL keeps the rows; whole hours, so nothing depends on the hour.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)


def envelope(contact: str, department: str, due: datetime) -> bytes:
    return routings.envelope(contact, department, BASE, due=due)


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

"""Routed items not yet resolved, and those past their SLA, per department.

Computed from ClickHouse (the `routed_items` view) by the process that owns it,
every few seconds, and exposed as gauges for the alert rules.
"""

from __future__ import annotations

import logging
from datetime import datetime

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.prometheus import metrics

log = logging.getLogger(__name__)


def backlog(store: ClickHouseStore, now: datetime) -> dict[str, dict[str, int]]:
    """department -> {"open": n, "overdue": n}, overdue as of ``now``.

    ``now`` comes from the caller's clock, never ClickHouse's ``now()``: the server
    (or the embedded engine) may run on another clock than the pipeline, and tests
    move the pipeline's clock.
    """
    db = store.database
    rows = store.query(
        f"SELECT department, count() AS open, "
        f"countIf(sla_due_at < {{now:DateTime64(3, 'UTC')}}) AS overdue "
        f"FROM {db}.routed_items WHERE resolved_at IS NULL GROUP BY department",
        parameters={"now": now},
    )
    return {dept: {"open": int(o), "overdue": int(d)} for dept, o, d in rows}


def update_gauges(store: ClickHouseStore, departments: set[str], now: datetime) -> None:
    """Set both gauges for every known department (0 where nothing is open)."""
    counts = backlog(store, now)
    for dept in departments | set(counts):
        metrics.OPEN_ITEMS.labels(dept).set(counts.get(dept, {}).get("open", 0))
        metrics.OVERDUE_ITEMS.labels(dept).set(counts.get(dept, {}).get("overdue", 0))

"""Routed items not yet resolved, and those past their SLA, per department.

Computed from ClickHouse (the `routed_items` view) by the process that owns it,
every few seconds, and exposed as gauges for the alert rules.
"""

from __future__ import annotations

import logging
from datetime import datetime

from vocflow.sinks import metrics
from vocflow.sinks.clickhouse import ClickHouseStore

log = logging.getLogger(__name__)


def backlog(store: ClickHouseStore, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """department -> {"open": n, "overdue": n}."""
    db = store.database
    at = "now64(3)" if now is None else "{now:DateTime64(3, 'UTC')}"
    rows = store.query(
        f"SELECT department, count() AS open, countIf(sla_due_at < {at}) AS overdue "
        f"FROM {db}.routed_items WHERE resolved_at IS NULL GROUP BY department",
        parameters={"now": now} if now is not None else None,
    )
    return {dept: {"open": int(o), "overdue": int(d)} for dept, o, d in rows}


def overdue_items(store: ClickHouseStore, limit: int = 100) -> list[dict]:
    """The oldest-due unresolved items, for `/api/backlog` and the CLI."""
    db = store.database
    return store.query_dicts(
        f"SELECT contact_id, department, category, urgency, routed_at, sla_due_at "
        f"FROM {db}.routed_items WHERE resolved_at IS NULL AND sla_due_at < now64(3) "
        f"ORDER BY sla_due_at LIMIT {int(limit)}"
    )


def update_gauges(store: ClickHouseStore, departments: set[str]) -> None:
    """Set both gauges for every known department (0 where nothing is open)."""
    counts = backlog(store)
    for dept in departments | set(counts):
        metrics.OPEN_ITEMS.labels(dept).set(counts.get(dept, {}).get("open", 0))
        metrics.OVERDUE_ITEMS.labels(dept).set(counts.get(dept, {}).get("overdue", 0))

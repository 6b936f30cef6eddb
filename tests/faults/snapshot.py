"""What a run left behind, as canonical JSON: every table that feeds a KPI and the
/api/kpis document at a fixed instant, read from a stopped worker's embedded
ClickHouse.

Run as a child process (``python -m tests.faults.snapshot SETTINGS_JSON``): one
process may open only one chdb path, and the suite compares two.

Columns that differ between two correct runs are left out: where a row sat in
Kafka (``kafka_partition``/``kafka_offset``: a re-produced event moves), when the
row was written (``ingested_at``, ``routed_at``), and the per-version KPI deltas
of ``contact_facts`` (the sink computes them against whatever it had stored; their
*sums* are compared, in ``kpi_minutes``).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.sinks.kpi.service import refresh
from vocflow.streams.core.settings import load_settings
from vocflow.streams.kpi.contributions import COUNTERS

KAFKA = "kafka_partition, kafka_offset"
TABLES = {
    "contact_events": f"SELECT * EXCEPT ({KAFKA}, ingested_at) FROM {{db}}.contact_events FINAL "
    "ORDER BY event_id",
    "contact_facts": f"SELECT * EXCEPT ({KAFKA}, kpi_deltas) FROM {{db}}.contact_facts FINAL "
    "ORDER BY contact_id",
    "routing_log": f"SELECT * EXCEPT ({KAFKA}, routed_at) FROM {{db}}.routing_log FINAL "
    "ORDER BY contact_id",
    "resolutions": f"SELECT * EXCEPT ({KAFKA}) FROM {{db}}.resolutions FINAL "
    "ORDER BY contact_id, event_id",
    "agent_events": f"SELECT * EXCEPT ({KAFKA}) FROM {{db}}.agent_events FINAL "
    "ORDER BY agent_id, occurred_at, event_id",
    # Where a dead letter came from, minus the run's topic prefix.
    "dead_letters": "SELECT replaceRegexpOne(source_topic, '^[^.]*[.]', '') AS topic, "
    "source_partition, source_offset, stage, reason FROM {db}.dead_letters FINAL "
    "ORDER BY topic, source_partition, source_offset, stage",
}
KPI_MINUTES = (
    "SELECT minute, queue, channel, department, "
    + ", ".join(f"sum({c})" for c in COUNTERS)
    + " FROM {db}.kpi_minutes GROUP BY minute, queue, channel, department "
    "ORDER BY minute, queue, channel, department"
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def snapshot(environ: dict[str, str], kpis_at: datetime) -> dict[str, Any]:
    settings = load_settings(environ=environ)
    db = settings.clickhouse_database
    store = ClickHouseStore.from_settings(settings)
    try:
        out: dict[str, Any] = {
            name: [_plain(list(row)) for row in store.query(sql.format(db=db))]
            for name, sql in TABLES.items()
        }
        # A minute whose deltas cancel out (a fact re-counted, then corrected) is a
        # row of zeros: the same KPIs as no row.
        rows = store.query(KPI_MINUTES.format(db=db))
        out["kpi_minutes"] = [_plain(list(row)) for row in rows if any(row[4:])]
        doc = refresh(settings, store, clock=lambda: kpis_at)
        out["api_kpis"] = doc.model_dump(mode="json", exclude={"generated_at"})
        return out
    finally:
        store.close()


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    result = snapshot(request["env"], datetime.fromisoformat(request["kpis_at"]))
    json.dump(result, sys.stdout, ensure_ascii=False)

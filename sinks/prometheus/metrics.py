"""Pipeline-health metrics, all in the default prometheus-client registry.

Labels are bounded: stage names, logical topic names, DLQ reason codes and
table names, never ids or free text.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STAGE_IN = Counter("vocflow_stage_events_in_total", "Events a pipeline stage consumed.", ["stage"])
STAGE_OUT = Counter(
    "vocflow_stage_events_out_total",
    "Events a stage produced, by output topic.",
    ["stage", "topic"],
)
DLQ = Counter(
    "vocflow_dlq_events_total", "Events sent to the dead-letter topic.", ["stage", "reason"]
)
SINK_ROWS = Counter("vocflow_sink_rows_total", "Rows written to ClickHouse.", ["table"])
SINK_BATCH_ROWS = Histogram(
    "vocflow_sink_batch_rows",
    "Rows per ClickHouse insert.",
    ["table"],
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000),
)
SINK_FLUSH_SECONDS = Histogram(
    "vocflow_sink_flush_duration_seconds",
    "Time to insert one batch into ClickHouse.",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SINK_FAILURES = Counter(
    "vocflow_sink_failures_total", "ClickHouse inserts that failed (retried).", ["table"]
)
SINK_QUARANTINED = Counter(
    "vocflow_sink_quarantined_total",
    "Records ClickHouse refused (a poison row): sent to the DLQ, the rest of the batch stored.",
    ["table"],
)
SINK_BLOCKED = Gauge(
    "vocflow_sink_blocked_seconds",
    "Seconds since the oldest pending sink batch could not be written (ClickHouse "
    "unavailable; consumption paused); 0 while writing.",
)
SINK_REJECTS = Counter(
    "vocflow_sink_rejected_records_total",
    "Records the sink could not decode (sent to the DLQ).",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "vocflow_consumer_lag_messages",
    "Messages not yet consumed, per group and topic.",
    ["group", "topic"],
)
UP = Gauge("vocflow_worker_up", "1 while the worker process runs its agents.")
VIEW_REJECTS = Counter(
    "vocflow_view_rejected_records_total",
    "Compacted-topic records that failed validation.",
    ["topic"],
)
RULES_RELOADS = Counter(
    "vocflow_rules_reloads_total", "Rules versions received from config.rules.", ["result"]
)
RULES_INFO = Gauge("vocflow_rules_info", "1 for the rules version in force.", ["version"])
MODEL_RELOADS = Counter(
    "vocflow_model_reloads_total",
    "Department model versions received from config.models, by result "
    "(applied, invalid, worse: scored below the model in force on the holdout).",
    ["result"],
)
MODEL_INFO = Gauge(
    "vocflow_model_info", "1 for the department model version in force.", ["version"]
)
DEPARTMENT_DECISIONS = Counter(
    "vocflow_department_decisions_total",
    "Department decisions by source: rule (pinned or no model), model, triage.",
    ["source"],
)
ROUTED = Counter(
    "vocflow_routed_total",
    "Contacts routed to a department topic.",
    ["department", "urgency"],
)
VOC_STATE_ENTRIES = Gauge(
    "vocflow_voc_state_entries",
    "Entries the voc loop remembers per input partition (repeat keys + routed contacts).",
    ["partition"],
)
TX_BATCHES = Counter(
    "vocflow_stage_transactions_total",
    "Transactions of the exactly-once stages (normalize, voc, facts) by outcome "
    "(committed, failed: the batch is read again).",
    ["stage", "outcome"],
)
REPEATS = Counter("vocflow_repeat_contacts_total", "Contacts flagged as repeat contacts.")
PII_MASKED = Counter("vocflow_pii_masked_total", "PII items masked in contact texts.", ["kind"])
OPEN_ITEMS = Gauge(
    "vocflow_routed_items_open", "Routed items without a resolution.", ["department"]
)
OVERDUE_ITEMS = Gauge(
    "vocflow_routed_items_overdue",
    "Routed items unresolved past their SLA due time.",
    ["department"],
)
FACTS_HELD = Gauge("vocflow_facts_held", "Contact facts in this worker's table (memory).")
FACTS_EVICTED = Counter(
    "vocflow_facts_evicted_total", "Contact facts forgotten after VOCFLOW_FACTS_TTL_HOURS idle."
)

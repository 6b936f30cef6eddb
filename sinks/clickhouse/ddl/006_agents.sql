-- Scheduled shift segments from agents.shifts (`vocflow shifts load`).
-- A corrected segment with the same (agent_id, start) replaces the old one:
-- ReplacingMergeTree keeps the latest `published_at`; query with FINAL. A
-- corrected segment that moved overlaps the old one instead; readers let the
-- later published one win (sinks/kpi/agent_kpis.py, effective_shifts).
CREATE TABLE IF NOT EXISTS {db}.agent_shifts
(
    agent_id        String,
    team            LowCardinality(String),
    start           DateTime64(3, 'UTC'),
    end             DateTime64(3, 'UTC'),
    activity        LowCardinality(String),
    published_at    DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64
)
ENGINE = ReplacingMergeTree(published_at)
PARTITION BY toYYYYMM(start)
ORDER BY (agent_id, start)
TTL toDateTime(start) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Seconds per agent and local 15-minute interval, for SQL and dashboards:
-- occupancy = sum(on_contact + after_work) / sum(ready + on_contact + after_work),
-- utilization = sum(on_contact + after_work) / sum(scheduled),
-- adherence = sum(adherent) / sum(scheduled), AHT = sum(handle) / sum(handled).
-- Written by the process that owns ClickHouse: after each interval closes it
-- rewrites every closed interval of that local day (so late agent events,
-- facts and schedule corrections land); a new `computed_at` replaces the old
-- row, and a row that became empty is rewritten with zeros. Query with FINAL.
CREATE TABLE IF NOT EXISTS {db}.agent_intervals
(
    interval_start      DateTime64(3, 'UTC'),
    agent_id            String,
    team                LowCardinality(String),
    scheduled_seconds   Float64,
    logged_in_seconds   Float64,
    ready_seconds       Float64,
    on_contact_seconds  Float64,
    after_work_seconds  Float64,
    not_ready_seconds   Float64,
    not_ready_by_reason Map(String, Float64),
    adherent_seconds    Float64,
    handled             UInt32,
    handle_seconds      Float64,
    computed_at         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(interval_start)
ORDER BY (agent_id, interval_start)
TTL toDateTime(interval_start) + INTERVAL 400 DAY;

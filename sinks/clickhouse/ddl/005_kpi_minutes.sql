-- Superseded by 007_kpi_deltas.sql: kpi_minutes is now a view over kpi_deltas,
-- which the sink writes before each fact (a materialized view lost deltas when
-- the process died between its part and the fact's part).
-- 1-minute KPI aggregates (issue: live KPIs). Each contact_facts row carries
-- `kpi_deltas`: what this version of the fact changes in the per-minute
-- counters (streams/kpi/contributions.py). The view below sums them, so the
-- latest versions' contributions are always the total, and KPIs for any
-- whole-minute interval (15 min, 60 min, today, a month) are a small GROUP BY
-- here instead of a scan of the facts. Named queries: sinks/kpi/kpis.sql.
-- The sink decides each row's deltas itself (contributions of the incoming
-- fact minus those of the stored latest fact of its contact), so the totals
-- are always those of the latest stored facts, whatever a restarted worker
-- re-emits (sinks/clickhouse/tables.py, LatestFactDeltas).
ALTER TABLE {db}.contact_facts
    ADD COLUMN IF NOT EXISTS department LowCardinality(String) DEFAULT '' AFTER first_queue,
    ADD COLUMN IF NOT EXISTS category LowCardinality(String) DEFAULT '' AFTER department,
    ADD COLUMN IF NOT EXISTS offered_at Nullable(DateTime64(3, 'UTC')) AFTER arrival_at,
    ADD COLUMN IF NOT EXISTS wait_start_at Nullable(DateTime64(3, 'UTC')) AFTER offered_at,
    ADD COLUMN IF NOT EXISTS left_queue_at Nullable(DateTime64(3, 'UTC')) AFTER wait_start_at,
    ADD COLUMN IF NOT EXISTS received_at Nullable(DateTime64(3, 'UTC')) AFTER left_queue_at,
    ADD COLUMN IF NOT EXISTS first_response_at Nullable(DateTime64(3, 'UTC')) AFTER received_at,
    ADD COLUMN IF NOT EXISTS resolved_at Nullable(DateTime64(3, 'UTC')) AFTER first_response_at,
    ADD COLUMN IF NOT EXISTS kpi_deltas Array(Tuple(
        minute DateTime('UTC'), queue String, channel String, department String,
        counters Array(Int64))) AFTER fact;

CREATE TABLE IF NOT EXISTS {db}.kpi_minutes
(
    minute               DateTime('UTC'),
    queue                LowCardinality(String),
    channel              LowCardinality(String),
    department           LowCardinality(String),
    contacts             SimpleAggregateFunction(sum, Int64),
    complaints           SimpleAggregateFunction(sum, Int64),
    offered              SimpleAggregateFunction(sum, Int64),
    sl_answered_within   SimpleAggregateFunction(sum, Int64),
    sl_base              SimpleAggregateFunction(sum, Int64),
    abandoned            SimpleAggregateFunction(sum, Int64),
    abandon_base         SimpleAggregateFunction(sum, Int64),
    short_abandons       SimpleAggregateFunction(sum, Int64),
    answered             SimpleAggregateFunction(sum, Int64),
    wait_ms              SimpleAggregateFunction(sum, Int64),
    handled              SimpleAggregateFunction(sum, Int64),
    handle_ms            SimpleAggregateFunction(sum, Int64),
    transferred          SimpleAggregateFunction(sum, Int64),
    csat_answers         SimpleAggregateFunction(sum, Int64),
    csat_satisfied       SimpleAggregateFunction(sum, Int64),
    nps_answers          SimpleAggregateFunction(sum, Int64),
    nps_promoters        SimpleAggregateFunction(sum, Int64),
    nps_detractors       SimpleAggregateFunction(sum, Int64),
    fcr_answers          SimpleAggregateFunction(sum, Int64),
    fcr_resolved         SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, queue, channel, department)
TTL minute + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.kpi_minutes_mv TO {db}.kpi_minutes AS
SELECT
    d.minute AS minute,
    d.queue AS queue,
    d.channel AS channel,
    d.department AS department,
    d.counters[1] AS contacts,
    d.counters[2] AS complaints,
    d.counters[3] AS offered,
    d.counters[4] AS sl_answered_within,
    d.counters[5] AS sl_base,
    d.counters[6] AS abandoned,
    d.counters[7] AS abandon_base,
    d.counters[8] AS short_abandons,
    d.counters[9] AS answered,
    d.counters[10] AS wait_ms,
    d.counters[11] AS handled,
    d.counters[12] AS handle_ms,
    d.counters[13] AS transferred,
    d.counters[14] AS csat_answers,
    d.counters[15] AS csat_satisfied,
    d.counters[16] AS nps_answers,
    d.counters[17] AS nps_promoters,
    d.counters[18] AS nps_detractors,
    d.counters[19] AS fcr_answers,
    d.counters[20] AS fcr_resolved
FROM {db}.contact_facts
ARRAY JOIN kpi_deltas AS d;

-- KPI deltas per fact record, written by the sink BEFORE the fact itself
-- (issue 13). Until this migration, a materialized view on contact_facts summed
-- each row's `kpi_deltas` into kpi_minutes. A view writes its part after the
-- source part: the fault suite killed a worker while its sink was inserting and
-- kept a batch of facts whose deltas never reached kpi_minutes, so the next
-- version of each of those contacts subtracted a contribution that had never
-- been added (26 minute rows off after four kill -9).
--
-- Now the sink's LatestFactDeltas hook accounts for each fact record before the
-- fact is inserted: its delta cells here, keyed by the record's identity
-- (contact, version, Kafka coordinates), then its mark in kpi_accounted. A
-- record read again after a crash is found marked and never computed again
-- (sinks/clickhouse/tables.py); a copy of a row written twice collapses here
-- (ReplacingMergeTree, the last inserted wins: the zeros written for a
-- quarantined record replace its cells). kpi_minutes becomes a view over this
-- table, FINAL; the interval queries read it as before.
CREATE TABLE IF NOT EXISTS {db}.kpi_deltas
(
    minute               DateTime('UTC'),
    queue                LowCardinality(String),
    channel              LowCardinality(String),
    department           LowCardinality(String),
    contact_id           String,
    version              UInt32,
    kafka_partition      UInt32,
    kafka_offset         UInt64,
    contacts             Int64,
    complaints           Int64,
    offered              Int64,
    sl_answered_within   Int64,
    sl_base              Int64,
    abandoned            Int64,
    abandon_base         Int64,
    short_abandons       Int64,
    answered             Int64,
    wait_ms              Int64,
    handled              Int64,
    handle_ms            Int64,
    transferred          Int64,
    csat_answers         Int64,
    csat_satisfied       Int64,
    nps_answers          Int64,
    nps_promoters        Int64,
    nps_detractors       Int64,
    fcr_answers          Int64,
    fcr_resolved         Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, queue, channel, department, contact_id, version, kafka_partition, kafka_offset)
TTL minute + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Which fact records have their deltas in kpi_deltas (accounted = 1), or had
-- them withdrawn because ClickHouse refused the fact (accounted = 0).
CREATE TABLE IF NOT EXISTS {db}.kpi_accounted
(
    contact_id      String,
    version         UInt32,
    kafka_partition UInt32,
    kafka_offset    UInt64,
    accounted       UInt8,
    written_at      DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
ORDER BY (contact_id, version, kafka_partition, kafka_offset)
TTL written_at + INTERVAL 400 DAY;

DROP VIEW IF EXISTS {db}.kpi_minutes_mv;

-- What the old aggregates hold is kept, as one row per minute and group with
-- an empty identity.
INSERT INTO {db}.kpi_deltas
SELECT minute, queue, channel, department, '', 0, 0, 0, sum(contacts), sum(complaints), sum(offered), sum(sl_answered_within), sum(sl_base), sum(abandoned), sum(abandon_base), sum(short_abandons), sum(answered), sum(wait_ms), sum(handled), sum(handle_ms), sum(transferred), sum(csat_answers), sum(csat_satisfied), sum(nps_answers), sum(nps_promoters), sum(nps_detractors), sum(fcr_answers), sum(fcr_resolved)
FROM {db}.kpi_minutes
GROUP BY minute, queue, channel, department;

DROP TABLE IF EXISTS {db}.kpi_minutes;

CREATE VIEW IF NOT EXISTS {db}.kpi_minutes AS
SELECT
    minute,
    queue,
    channel,
    department,
    sum(contacts) AS contacts,
    sum(complaints) AS complaints,
    sum(offered) AS offered,
    sum(sl_answered_within) AS sl_answered_within,
    sum(sl_base) AS sl_base,
    sum(abandoned) AS abandoned,
    sum(abandon_base) AS abandon_base,
    sum(short_abandons) AS short_abandons,
    sum(answered) AS answered,
    sum(wait_ms) AS wait_ms,
    sum(handled) AS handled,
    sum(handle_ms) AS handle_ms,
    sum(transferred) AS transferred,
    sum(csat_answers) AS csat_answers,
    sum(csat_satisfied) AS csat_satisfied,
    sum(nps_answers) AS nps_answers,
    sum(nps_promoters) AS nps_promoters,
    sum(nps_detractors) AS nps_detractors,
    sum(fcr_answers) AS fcr_answers,
    sum(fcr_resolved) AS fcr_resolved
FROM {db}.kpi_deltas FINAL
GROUP BY minute, queue, channel, department;

-- Every normalized contact event, one row per event_id.
-- The worker is at-least-once: a retried batch is dropped by its insert
-- deduplication token, and a re-produced event (same event_id, new offset)
-- collapses at merge time (ReplacingMergeTree on the sorting key); exact
-- counts query with FINAL. Customer text is NOT stored here: it is not yet
-- PII-masked at this stage (DOMAIN.md, Privacy); only its length is kept.
CREATE TABLE IF NOT EXISTS {db}.contact_events
(
    event_id           String,
    contact_id         String,
    customer_id        Nullable(String),
    channel            LowCardinality(String),
    event_type         LowCardinality(String),
    occurred_at        DateTime64(3, 'UTC'),
    queue              LowCardinality(String),
    agent_id           Nullable(String),
    text_chars         UInt32,
    wait_seconds       Nullable(Float64),
    talk_seconds       Nullable(Float64),
    hold_seconds       Nullable(Float64),
    after_work_seconds Nullable(Float64),
    transfer_to        Nullable(String),
    csat               Nullable(UInt8),
    nps                Nullable(UInt8),
    fcr                Nullable(Bool),
    source             LowCardinality(String),
    schema_version     UInt8,
    kafka_partition    UInt32,
    kafka_offset       UInt64,
    ingested_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Rejected input, for operators to see what is failing and why. The original
-- bytes stay in the contacts.dlq topic only: they may hold unmasked PII.
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    reason           LowCardinality(String),
    stage            LowCardinality(String),
    errors           String,
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    original_size    UInt32,
    rejected_at      DateTime64(3, 'UTC'),
    kafka_partition  UInt32,
    kafka_offset     UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (source_topic, source_partition, source_offset, stage)
TTL toDateTime(rejected_at) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per contact and version: the folded lifecycle (streams/kpi/fold.py).
-- ReplacingMergeTree on `version` keeps the latest fact; query with FINAL.
-- `fact` holds the whole fact as JSON so KPIs are computed by the same code
-- that the oracle tests verify; the typed columns serve ad-hoc SQL.
CREATE TABLE IF NOT EXISTS {db}.contact_facts
(
    contact_id        String,
    version           UInt32,
    channel           LowCardinality(String),
    queue             LowCardinality(String),
    first_queue       LowCardinality(String),
    agent_id          Nullable(String),
    customer_id       Nullable(String),
    arrival_at        Nullable(DateTime64(3, 'UTC')),
    answered          Bool,
    abandoned         Bool,
    short_abandon     Bool,
    wait_seconds      Nullable(Float64),
    handle_seconds    Float64,
    transfers         UInt16,
    csat              Nullable(UInt8),
    nps               Nullable(UInt8),
    last_activity_at  DateTime64(3, 'UTC'),
    fact              String,
    kafka_partition   UInt32,
    kafka_offset      UInt64
)
ENGINE = ReplacingMergeTree(version)
-- Not partitioned by time: a contact's versions move in time (a survey next
-- month), and ReplacingMergeTree only collapses versions within a partition.
ORDER BY (contact_id)
TTL toDateTime(last_activity_at) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Agent state changes as they arrived; timelines are rebuilt from them.
CREATE TABLE IF NOT EXISTS {db}.agent_events
(
    event_id        String,
    agent_id        String,
    team            LowCardinality(String),
    state           LowCardinality(String),
    reason          LowCardinality(String),
    contact_id      Nullable(String),
    occurred_at     DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (agent_id, occurred_at, event_id)
TTL toDateTime(occurred_at) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Keyword counts per minute for hot topics (from routed, masked contacts).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.keyword_minutes
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, department, keyword)
TTL toDateTime(minute) + INTERVAL 90 DAY
AS SELECT
    toStartOfMinute(occurred_at) AS minute,
    department,
    arrayJoin(keywords) AS keyword,
    toUInt64(1) AS contacts
FROM {db}.routing_log;

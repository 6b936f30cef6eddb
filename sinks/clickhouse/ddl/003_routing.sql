-- Every routing decision (one per contact), with the masked text and the
-- rule that set each tag, so "why did this go to billing?" is one query.
CREATE TABLE IF NOT EXISTS {db}.routing_log
(
    envelope_id         String,
    contact_id          String,
    customer_id         Nullable(String),
    channel             LowCardinality(String),
    event_type          LowCardinality(String),
    queue               LowCardinality(String),
    occurred_at         DateTime64(3, 'UTC'),
    routed_at           DateTime64(3, 'UTC'),
    department          LowCardinality(String),
    business_type       LowCardinality(String),
    support_system      LowCardinality(String),
    bearer_network      LowCardinality(String),
    category            LowCardinality(String),
    urgency             LowCardinality(String),
    department_rule     String,
    category_rule       String,
    urgency_rule        String,
    sentiment           Float32,
    keywords            Array(String),
    language            LowCardinality(String),
    text                String,
    customer_tier       LowCardinality(String),
    customer_city       LowCardinality(String),
    customer_known      Bool,
    repeat_contact      Bool,
    previous_contact_id Nullable(String),
    sla_due_at          DateTime64(3, 'UTC'),
    rules_version       LowCardinality(String),
    reason              String,
    kafka_partition     UInt32,
    kafka_offset        UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (contact_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- What departments report back. The note is PII-masked by the sink.
CREATE TABLE IF NOT EXISTS {db}.resolutions
(
    event_id        String,
    contact_id      String,
    department      LowCardinality(String),
    outcome         LowCardinality(String),
    resolved_at     DateTime64(3, 'UTC'),
    note            String,
    source          LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset    UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(resolved_at)
ORDER BY (contact_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per routed item with its first resolution (a 'rejected' outcome
-- means "not ours" and does not resolve). Unresolved: resolved_at IS NULL.
-- reopened: a later repeat contact (same customer and category) arrived after
-- this item was resolved.
CREATE VIEW IF NOT EXISTS {db}.routed_items AS
SELECT
    r.contact_id AS contact_id,
    r.customer_id AS customer_id,
    r.department AS department,
    r.category AS category,
    r.urgency AS urgency,
    r.routed_at AS routed_at,
    r.sla_due_at AS sla_due_at,
    s.first_resolved_at AS resolved_at,
    s.first_outcome AS outcome,
    if(s.first_resolved_at IS NULL, NULL,
       dateDiff('millisecond', r.routed_at, s.first_resolved_at) / 1000.0)
        AS time_to_resolve_seconds,
    if(s.first_resolved_at IS NULL, NULL, s.first_resolved_at <= r.sla_due_at) AS sla_met,
    (s.first_resolved_at IS NOT NULL AND n.next_routed_at IS NOT NULL
     AND n.next_routed_at > s.first_resolved_at) AS reopened
FROM (SELECT * FROM {db}.routing_log FINAL) AS r
LEFT JOIN
(
    SELECT contact_id, min(resolved_at) AS first_resolved_at,
           argMin(outcome, resolved_at) AS first_outcome
    FROM {db}.resolutions FINAL
    WHERE outcome != 'rejected'
    GROUP BY contact_id
) AS s ON s.contact_id = r.contact_id
LEFT JOIN
(
    SELECT previous_contact_id AS contact_id, min(routed_at) AS next_routed_at
    FROM {db}.routing_log FINAL
    WHERE previous_contact_id IS NOT NULL
    GROUP BY previous_contact_id
) AS n ON n.contact_id = r.contact_id
SETTINGS join_use_nulls = 1;

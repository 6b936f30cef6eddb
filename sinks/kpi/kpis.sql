-- Named KPI queries, one per DOMAIN.md KPI (docs/kpis.md has the definitions).
--
-- Every query returns one row per group: `by` ('all', 'queue', 'channel' or
-- 'department'), `grp` (the group; '_all' for the total, 'unknown' when the
-- fact has no value), then for each KPI it computes `<kpi>__numerator`,
-- `<kpi>__denominator` and `<kpi>__population` (how many contacts the KPI
-- looked at; a group with population 0 is absent, a group with denominator 0
-- has no value). Ratios are formed by the caller, never averaged.
-- Macros (expanded by sinks/kpi/queries.py): {db}; {by} {grp} {sets} group the
-- columns `queue`, `channel`, `department`; {measures} is the list of the
-- interval KPIs' sums; {minutes} is what the interval KPIs sum over. The same
-- queries, with other macros ({by} 'contact', {grp} the contact, {sets} one
-- group per contact, {minutes} the per-contact deltas), list the contacts
-- behind each number (sinks/kpi/drilldown.py): every row source below keeps
-- `contact_id` for that. ClickHouse query parameters: {start:...} {end:...}
-- (whole minutes), {at:...} (now), {window_ms:...}, {stale_ms:...}, {sla_ms:...}.

-- name: interval
-- The frame of every interval KPI: whole minutes of the 1-minute aggregates
-- (a view over kpi_deltas: sinks/clickhouse/ddl/007_kpi_deltas.sql), grouped four
-- ways in one pass.
SELECT {by}, {grp}, {measures}
FROM {minutes}
WHERE minute >= {start:DateTime64(3, 'UTC')} AND minute < {end:DateTime64(3, 'UTC')}
GROUP BY {sets};

-- name: volume
-- Contact volume: contacts that began in the interval (any channel).
sum(contacts) AS volume__numerator, 1 AS volume__denominator, sum(contacts) AS volume__population;

-- name: service_level
-- Service level (服务水平) SL(T) = answered within T / (answered + abandoned
-- after T); short abandons excluded. T is the contact's first queue's
-- threshold (VOCFLOW_SL_THRESHOLD_BY_QUEUE, else VOCFLOW_SL_THRESHOLD_SECONDS).
sum(sl_answered_within) AS service_level__numerator, sum(sl_base) AS service_level__denominator,
sum(offered) AS service_level__population;

-- name: asa
-- ASA (平均应答速度) = total wait of answered contacts / answered contacts (ms).
sum(wait_ms) AS asa__numerator, sum(answered) AS asa__denominator, sum(answered) AS asa__population;

-- name: abandonment_rate
-- Abandonment rate (放弃率) = abandoned / offered, both without short abandons.
sum(abandoned) AS abandonment_rate__numerator, sum(abandon_base) AS abandonment_rate__denominator,
sum(offered) AS abandonment_rate__population;

-- name: aht
-- AHT (平均处理时长) = (talk + hold + after-contact work) / handled contacts (ms).
sum(handle_ms) AS aht__numerator, sum(handled) AS aht__denominator, sum(handled) AS aht__population;

-- name: transfer_rate
-- Transfer rate = handled contacts transferred at least once / handled contacts.
sum(transferred) AS transfer_rate__numerator, sum(handled) AS transfer_rate__denominator,
sum(handled) AS transfer_rate__population;

-- name: csat
-- CSAT (满意度) = satisfied answers (4-5 of 5) / survey answers, by survey time.
sum(csat_satisfied) AS csat__numerator, sum(csat_answers) AS csat__denominator,
sum(csat_answers) AS csat__population;

-- name: nps
-- NPS = % promoters (9-10) - % detractors (0-6); numerator promoters - detractors.
sum(nps_promoters) - sum(nps_detractors) AS nps__numerator, sum(nps_answers) AS nps__denominator,
sum(nps_answers) AS nps__population;

-- name: fcr_survey
-- FCR from surveys: "resolved first time" answers / FCR answers.
sum(fcr_resolved) AS fcr_survey__numerator, sum(fcr_answers) AS fcr_survey__denominator,
sum(fcr_answers) AS fcr_survey__population;

-- name: complaint_rate
-- Complaint rate (投诉率) = contacts routed to complaints / contacts begun.
sum(complaints) AS complaint_rate__numerator, sum(contacts) AS complaint_rate__denominator,
sum(contacts) AS complaint_rate__population;

-- name: fcr
-- FCR (一次解决率) = 1 - repeat-contact rate, and the repeat-contact rate: a
-- contact begun in the interval is repeated when the same customer contacts
-- again about the same category within the window ({window_ms}) after it.
-- Reads the facts (not the minutes): whether a contact was repeated is only
-- known later, from another contact.
WITH chained AS (
    SELECT
        contact_id, arrival_at, first_queue AS queue, channel, department,
        leadInFrame(arrival_at) OVER (
            PARTITION BY customer_id, category ORDER BY arrival_at, contact_id
            ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING
        ) AS next_arrival
    FROM {db}.contact_facts FINAL
    WHERE customer_id IS NOT NULL AND category != '' AND arrival_at IS NOT NULL
        AND arrival_at >= {start:DateTime64(3, 'UTC')}
        AND arrival_at < {end:DateTime64(3, 'UTC')} + toIntervalMillisecond({window_ms:Int64})
        AND last_activity_at >= {start:DateTime64(3, 'UTC')}
),
judged AS (
    SELECT *, toUInt8(next_arrival IS NOT NULL
        AND dateDiff('millisecond', arrival_at, next_arrival) <= {window_ms:Int64}) AS repeated
    FROM chained
    WHERE arrival_at >= {start:DateTime64(3, 'UTC')} AND arrival_at < {end:DateTime64(3, 'UTC')}
)
SELECT {by}, {grp},
    count() - sum(repeated) AS fcr__numerator, count() AS fcr__denominator,
    count() AS fcr__population,
    sum(repeated) AS repeat_contact_rate__numerator, count() AS repeat_contact_rate__denominator,
    count() AS repeat_contact_rate__population
FROM judged
GROUP BY {sets};

-- name: waiting
-- Queue depth and oldest waiting contact at {at}: in a queue by then (queue
-- entry, else offered: time in an IVR before it does not count), not yet
-- answered/abandoned/timed out/ended, waiting no longer than {stale_ms} (an
-- older one lost its exit event). Oldest waiting is in ms.
SELECT {by}, {grp},
    count() AS queue_depth__numerator, 1 AS queue_depth__denominator,
    count() AS queue_depth__population,
    max(age_ms) AS oldest_waiting__numerator, 1 AS oldest_waiting__denominator,
    count() AS oldest_waiting__population
FROM (
    SELECT contact_id, first_queue AS queue, channel, department,
        dateDiff('millisecond', wait_start_at, {at:DateTime64(3, 'UTC')}) AS age_ms
    FROM {db}.contact_facts FINAL
    WHERE wait_start_at IS NOT NULL AND wait_start_at <= {at:DateTime64(3, 'UTC')}
        AND (left_queue_at IS NULL OR left_queue_at > {at:DateTime64(3, 'UTC')})
        AND last_activity_at >= {at:DateTime64(3, 'UTC')} - toIntervalMillisecond({stale_ms:Int64})
)
WHERE age_ms <= {stale_ms:Int64}
GROUP BY {sets};

-- name: backlog
-- Backlog: async contacts received by {at} and not resolved by then.
SELECT {by}, {grp},
    count() AS backlog__numerator, 1 AS backlog__denominator, count() AS backlog__population
FROM (
    SELECT contact_id, first_queue AS queue, channel, department
    FROM {db}.contact_facts FINAL
    WHERE received_at IS NOT NULL AND received_at <= {at:DateTime64(3, 'UTC')}
        AND (resolved_at IS NULL OR resolved_at > {at:DateTime64(3, 'UTC')})
)
GROUP BY {sets};

-- name: sla_breaches
-- SLA breaches of async contacts received in the interval: first response
-- (first_response_breach_rate) and resolution (resolution_breach_rate) later
-- than their SLA, or still missing at {at} and already overdue / contacts
-- whose outcome is decided (done by {at}, or overdue).
SELECT {by}, {grp},
    sum(fr_breach) AS first_response_breach_rate__numerator,
    sum(fr_decided) AS first_response_breach_rate__denominator,
    count() AS first_response_breach_rate__population,
    sum(res_breach) AS resolution_breach_rate__numerator,
    sum(res_decided) AS resolution_breach_rate__denominator,
    count() AS resolution_breach_rate__population
FROM (
    SELECT contact_id, first_queue AS queue, channel, department,
        dateDiff('millisecond', received_at, {at:DateTime64(3, 'UTC')}) AS open_ms,
        first_response_at IS NOT NULL AND first_response_at <= {at:DateTime64(3, 'UTC')} AS fr_done,
        resolved_at IS NOT NULL AND resolved_at <= {at:DateTime64(3, 'UTC')} AS res_done,
        if(fr_done, dateDiff('millisecond', received_at, first_response_at) > {fr_sla_ms:Int64},
            open_ms > {fr_sla_ms:Int64}) AS fr_breach,
        fr_done OR open_ms > {fr_sla_ms:Int64} AS fr_decided,
        if(res_done, dateDiff('millisecond', received_at, resolved_at) > {res_sla_ms:Int64},
            open_ms > {res_sla_ms:Int64}) AS res_breach,
        res_done OR open_ms > {res_sla_ms:Int64} AS res_decided
    FROM {db}.contact_facts FINAL
    WHERE received_at >= {start:DateTime64(3, 'UTC')} AND received_at < {end:DateTime64(3, 'UTC')}
)
GROUP BY {sets};

-- name: misroutes
-- Misroute rate (per department) = items routed in the interval that the
-- department they were routed to answered "not ours -> X" (a Resolution with
-- outcome 'reassigned') by {at} / items routed in the interval. The last routing
-- of a contact counts (routing_log FINAL); a correction counts once per item and
-- only from the department the item was routed to (a stale one from another
-- department is ignored): the view department_misroutes
-- (sinks/clickhouse/ddl/008_department_labels.sql) and streams/kpi/misroute.py,
-- here per interval and as of {at}. Queue and channel are the routing's own. IN
-- rather than a JOIN, so the counts cannot depend on `join_use_nulls` (which the
-- drill-down's page query sets).
SELECT {by}, {grp},
    sum(reassigned) AS misroute_rate__numerator, count() AS misroute_rate__denominator,
    count() AS misroute_rate__population
FROM (
    SELECT contact_id, queue, channel, department,
        toUInt8((contact_id, department) IN (
            SELECT contact_id, department
            FROM {db}.resolutions FINAL
            WHERE outcome = 'reassigned' AND resolved_at <= {at:DateTime64(3, 'UTC')}
        )) AS reassigned
    FROM {db}.routing_log FINAL
    WHERE routed_at >= {start:DateTime64(3, 'UTC')} AND routed_at < {end:DateTime64(3, 'UTC')}
)
GROUP BY {sets};

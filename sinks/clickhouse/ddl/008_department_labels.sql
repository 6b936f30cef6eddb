-- The department model's closed loop (docs/voc.md): a department answers
-- "not ours -> X" with a Resolution of outcome 'reassigned' and reassigned_to.
ALTER TABLE {db}.resolutions ADD COLUMN IF NOT EXISTS reassigned_to LowCardinality(String) DEFAULT '' AFTER source;

-- The label store: every correction as a training label (masked text, the right
-- department), with what routing had decided and who decided it (rule id, or
-- model:<version>). `vocflow labels export` writes it as JSONL for `vocflow train`.
CREATE VIEW IF NOT EXISTS {db}.department_labels AS
SELECT
    res.contact_id AS contact_id,
    r.text AS text,
    r.channel AS channel,
    r.department AS routed_department,
    res.target AS department,
    r.department_rule AS decided_by,
    res.last_at AS labelled_at,
    res.by AS source
FROM
(
    SELECT contact_id, argMax(reassigned_to, resolved_at) AS target,
           max(resolved_at) AS last_at, argMax(source, resolved_at) AS by
    FROM {db}.resolutions FINAL
    WHERE outcome = 'reassigned' AND reassigned_to != ''
    GROUP BY contact_id
) AS res
INNER JOIN
(
    SELECT contact_id, text, channel, department, department_rule
    FROM {db}.routing_log FINAL
) AS r ON r.contact_id = res.contact_id;

-- Misroute rate per department (docs/kpis.md): items routed to the department
-- that it reassigned elsewhere / items routed to it, by routing day.
CREATE VIEW IF NOT EXISTS {db}.department_misroutes AS
SELECT
    r.department AS department,
    toDate(r.routed_at) AS day,
    count() AS routed,
    countIf(c.contact_id != '') AS reassigned,
    countIf(c.contact_id != '') / count() AS misroute_rate
FROM (SELECT contact_id, department, routed_at FROM {db}.routing_log FINAL) AS r
LEFT JOIN
(
    SELECT DISTINCT contact_id, department
    FROM {db}.resolutions FINAL
    WHERE outcome = 'reassigned'
) AS c ON c.contact_id = r.contact_id AND c.department = r.department
GROUP BY department, day;

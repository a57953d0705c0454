-- jobdesk's webhook queries for PostgreSQL (schema version 14), each by name.

-- name: enable_outbox_trigger
ALTER TABLE jobdesk.job_events ENABLE TRIGGER job_events_to_webhooks;

-- name: disable_outbox_trigger
ALTER TABLE jobdesk.job_events DISABLE TRIGGER job_events_to_webhooks;

-- name: enable_group_outbox_triggers
-- While a webhook asks for group events (migration 0013).
ALTER TABLE jobdesk.job_events ENABLE TRIGGER job_events_to_group_webhooks;
ALTER TABLE jobdesk.groups ENABLE TRIGGER group_cancel_to_webhooks;

-- name: disable_group_outbox_triggers
ALTER TABLE jobdesk.job_events DISABLE TRIGGER job_events_to_group_webhooks;
ALTER TABLE jobdesk.groups DISABLE TRIGGER group_cancel_to_webhooks;

-- name: forget_group_tallies
-- Every group is counted again from its jobs the next time it is judged: the webhooks
-- changed, so a tally may be from before a time its triggers were off.
UPDATE jobdesk.groups SET
    tally_pending = NULL, tally_processing = NULL, tally_completed = NULL,
    tally_failed = NULL, tally_cancelled = NULL
WHERE tally_pending IS NOT NULL;

-- name: count_group_webhooks
SELECT count(*) FROM jobdesk.webhooks WHERE cardinality(group_statuses) > 0;

-- name: delete_webhook_of_owner
DELETE FROM jobdesk.webhooks
WHERE (%(user_id)s::text IS NOT NULL AND user_id = %(user_id)s)
   OR (%(project_id)s::text IS NOT NULL AND project_id = %(project_id)s);

-- name: insert_webhook
INSERT INTO jobdesk.webhooks (
    id, user_id, project_id, url, secret, statuses, group_statuses, allow_http, allow_private,
    created_at
) VALUES (
    %(id)s, %(user_id)s, %(project_id)s, %(url)s, %(secret)s, %(statuses)s,
    %(group_statuses)s, %(allow_http)s, %(allow_private)s, coalesce(%(now)s::timestamptz, now())
)
RETURNING created_at;

-- name: delete_webhook
DELETE FROM jobdesk.webhooks WHERE id = %(id)s;

-- name: count_job_webhooks
-- Webhooks that ask for a job event: the job trigger is on only while there is one.
SELECT count(*) FROM jobdesk.webhooks WHERE cardinality(statuses) > 0;

-- name: list_webhooks
SELECT * FROM jobdesk.webhooks ORDER BY created_at, id;

-- name: lock_claims
-- Claims of deliveries one at a time, across senders, until the claim commits: a claim
-- must see the one before it. Alone, two claims at once each read the other's rows as
-- not yet claimed (their snapshot predates the other's update; SKIP LOCKED passes over
-- the locked row itself, not the NOT EXISTS below), so one could take a job's earlier
-- delivery and the other its later one, and send them side by side, out of order.
SELECT pg_advisory_xact_lock(7596556357093452389);

-- name: claim_deliveries
-- In order per job: a delivery is due only when no earlier one of its webhook and job is
-- pending and not due (backing off, or claimed by a sender); a sender sends one job's
-- deliveries one after the other. Claimed for %(lease)s seconds (a sender that dies leaves them to the next).
WITH due AS (
    SELECT o.id FROM jobdesk.webhook_outbox AS o
    WHERE o.state = 'pending' AND o.next_attempt_at <= coalesce(%(now)s::timestamptz, now())
      AND NOT EXISTS (
          SELECT 1 FROM jobdesk.webhook_outbox AS earlier
          WHERE earlier.webhook_id = o.webhook_id AND earlier.job_id = o.job_id
            AND earlier.state = 'pending' AND earlier.id < o.id
            AND earlier.next_attempt_at > coalesce(%(now)s::timestamptz, now())
      )
    ORDER BY o.next_attempt_at, o.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobdesk.webhook_outbox AS o
SET next_attempt_at = coalesce(%(now)s::timestamptz, now())
                      + make_interval(secs => %(lease)s)
FROM due, jobdesk.webhooks AS w
WHERE o.id = due.id AND w.id = o.webhook_id
RETURNING o.*, w.url, w.secret, w.allow_http, w.allow_private;

-- name: record_deliveries
-- A batch's outcomes in one statement; the next try r.delay seconds from the
-- database's now (jobdesk.webhooks.next_delay chose it).
UPDATE jobdesk.webhook_outbox AS o SET
    state = r.state, tries = o.tries + r.counted,
    next_attempt_at = coalesce(%(now)s::timestamptz, now()) + make_interval(secs => r.delay),
    last_status = r.last_status, last_response = r.last_response,
    delivered_at = CASE WHEN r.state = 'delivered'
                        THEN coalesce(%(now)s::timestamptz, now()) END
FROM jsonb_to_recordset(%(outcomes)s::jsonb) AS r (
    id bigint, state text, counted integer, delay double precision, last_status integer,
    last_response text
)
WHERE o.id = r.id AND o.state = 'pending';

-- name: get_jobs
SELECT j.*, NULL::timestamptz AS store_now FROM jobdesk.jobs AS j
WHERE j.id = ANY(%(ids)s::text[]);

-- name: list_deliveries
SELECT * FROM jobdesk.webhook_outbox
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(webhook_id)s::text IS NULL OR webhook_id = %(webhook_id)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: redeliver
UPDATE jobdesk.webhook_outbox
SET state = 'pending', tries = 0, next_attempt_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s AND state IN ('dead', 'delivered');

-- name: delete_outbox_of_webhook
DELETE FROM jobdesk.webhook_outbox WHERE webhook_id = %(webhook_id)s;

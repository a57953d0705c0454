-- Every query PostgresStore runs, by name. Parameters are always bound (%(name)s), never
-- formatted in. The active statuses written here are those of JobStatus.is_active.
-- A query that restates a Python rule names it in a '-- twin of:' line; every row of
-- tests/integration/test_rule_twins.py runs through both and fails when they differ.
-- %(now)s is the injected test clock, or NULL for the database's own now().

-- name: now
SELECT coalesce(%(now)s::timestamptz, now());

-- name: select_job
SELECT *, coalesce(%(now)s::timestamptz, now()) AS store_now FROM jobdesk.jobs
WHERE id = %(id)s;

-- name: select_job_for_update
SELECT *, coalesce(%(now)s::timestamptz, now()) AS store_now FROM jobdesk.jobs
WHERE id = %(id)s
FOR UPDATE;

-- name: select_user_job
SELECT *, coalesce(%(now)s::timestamptz, now()) AS store_now FROM jobdesk.jobs
WHERE id = %(id)s AND user_id = %(user_id)s;

-- name: select_jobs
-- The rows an optimistic update decides from; xmin (the row version) changes with every
-- write, so write_jobs can tell whether a row is still as it was read.
SELECT *, xmin::text AS version, coalesce(%(now)s::timestamptz, now()) AS store_now
FROM jobdesk.jobs
WHERE id = ANY(%(ids)s)
  AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s);

-- name: select_jobs_for_update
SELECT *, xmin::text AS version, coalesce(%(now)s::timestamptz, now()) AS store_now
FROM jobdesk.jobs
WHERE id = ANY(%(ids)s)
  AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
ORDER BY id
FOR UPDATE;

-- name: select_user_job_for_update
SELECT *, coalesce(%(now)s::timestamptz, now()) AS store_now FROM jobdesk.jobs
WHERE id = %(id)s AND user_id = %(user_id)s
FOR UPDATE;

-- name: select_job_by_idempotency_key
SELECT *, coalesce(%(now)s::timestamptz, now()) AS store_now FROM jobdesk.jobs
WHERE user_id = %(user_id)s AND idempotency_key = %(idempotency_key)s;

-- name: create_job
-- twin of: jobdesk.limits.usage, jobdesk.limits.Limits.for_user, jobdesk.lifecycle.create
-- twin of: jobdesk.limits.check_daily, jobdesk.limits.check_active
-- One round trip: jobdesk.create_job (migration 0004) locks the user's row, counts, and
-- stores the job with its first history entry only if the limits leave room; it returns
-- the numbers it judged by, for PostgresStore to raise jobdesk.limits' refusal.
SELECT * FROM jobdesk.create_job(
    %(id)s::text, %(user_id)s::text, %(project_id)s::text, %(type)s::text,
    %(input)s::jsonb, %(priority)s::integer, %(max_attempts)s::integer,
    %(run_at)s::timestamptz, %(idempotency_key)s::text, %(now)s::timestamptz,
    %(default_max_active)s::integer, %(default_max_daily)s::integer
);

-- name: lock_user
-- Locks the user's row (making it if needed) before an active count that must not race.
INSERT INTO jobdesk.users AS u (user_id) VALUES (%(user_id)s)
ON CONFLICT (user_id) DO UPDATE SET user_id = u.user_id
RETURNING max_active, max_daily;

-- name: lock_user_usage
-- A bulk create's start: locks the user's row (making it if needed) and reads its limits
-- and its count for the day, with the time the whole transaction stamps.
INSERT INTO jobdesk.users AS u (user_id) VALUES (%(user_id)s)
ON CONFLICT (user_id) DO UPDATE SET user_id = u.user_id
RETURNING max_active, max_daily, usage_day, created_on_day,
          coalesce(%(now)s::timestamptz, now()) AS store_now;

-- name: insert_jobs
-- twin of: jobdesk.lifecycle.create
-- New jobs as jobdesk.lifecycle.create made them, with their first history entries.
WITH n AS MATERIALIZED (
    SELECT * FROM ROWS FROM (
        jsonb_to_recordset(%(jobs)s::jsonb) AS (
            id text, user_id text, project_id text, type text, input jsonb, priority integer,
            max_attempts integer, created_at timestamptz, run_at timestamptz
        )
    ) WITH ORDINALITY AS n (
        id, user_id, project_id, type, input, priority, max_attempts, created_at, run_at,
        position
    )
), inserted AS (
    INSERT INTO jobdesk.jobs (
        id, user_id, project_id, type, status, input, priority, attempt, max_attempts,
        attempt_offset, created_at, run_at, updated_at, cancel_requested
    )
    SELECT id, user_id, project_id, type, 'pending', coalesce(input, 'null'::jsonb), priority,
           0, max_attempts, 0, created_at, run_at, created_at, false
    FROM n ORDER BY position
)
INSERT INTO jobdesk.job_events (job_id, at, status, attempt)
SELECT id, created_at, 'pending', 0 FROM n ORDER BY position;

-- name: count_created
UPDATE jobdesk.users SET usage_day = %(day)s, created_on_day = %(count)s
WHERE user_id = %(user_id)s;

-- name: count_active
-- twin of: jobdesk.models.JobStatus.is_active
SELECT count(*) FROM jobdesk.jobs
WHERE user_id = %(user_id)s AND status IN ('pending', 'processing');

-- name: write_jobs
-- One statement for a batch: every job's new state and the history entries of those
-- whose status changed, in order, as JSON arrays of objects (one parameter each: far
-- cheaper for the client than an array per column). All or nothing: it first locks the
-- rows still at the version each new state was decided from (in id order), and writes
-- only if every one is; it answers whether it wrote.
WITH w AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(jobs)s::jsonb) AS w (
        id text, version text, status text, result jsonb, error jsonb,
        progress double precision, progress_message text, attempt integer,
        max_attempts integer, attempt_offset integer, run_at timestamptz,
        started_at timestamptz, finished_at timestamptz, updated_at timestamptz,
        worker_id text, lease_expires_at timestamptz, cancel_requested boolean
    )
), unchanged AS MATERIALIZED (
    SELECT j.id FROM jobdesk.jobs AS j JOIN w ON j.id = w.id AND j.xmin::text = w.version
    WHERE j.id = ANY(%(ids)s::text[])  -- the primary key's index, whatever the estimates
    ORDER BY j.id
    FOR UPDATE OF j
), verdict AS MATERIALIZED (
    SELECT (SELECT count(*) FROM unchanged) = (SELECT count(*) FROM w) AS unchanged
), written AS (
    UPDATE jobdesk.jobs AS j SET
        status = w.status, result = w.result, error = w.error, progress = w.progress,
        progress_message = w.progress_message, attempt = w.attempt,
        max_attempts = w.max_attempts, attempt_offset = w.attempt_offset, run_at = w.run_at,
        started_at = w.started_at, finished_at = w.finished_at, updated_at = w.updated_at,
        worker_id = w.worker_id, lease_expires_at = w.lease_expires_at,
        cancel_requested = w.cancel_requested
    FROM w, verdict
    WHERE j.id = w.id AND j.id = ANY(%(ids)s::text[]) AND verdict.unchanged
), history AS (
    INSERT INTO jobdesk.job_events (job_id, at, status, attempt, worker_id, error)
    SELECT e.job_id, e.at, e.status, e.attempt, e.worker_id, e.error
    FROM ROWS FROM (
        jsonb_to_recordset(%(events)s::jsonb) AS (
            job_id text, at timestamptz, status text, attempt integer, worker_id text,
            error jsonb
        )
    ) WITH ORDINALITY AS e (job_id, at, status, attempt, worker_id, error, position),
    verdict
    WHERE verdict.unchanged
    ORDER BY e.position
)
SELECT unchanged FROM verdict;

-- name: select_events
SELECT job_id, at, status, attempt, worker_id, error FROM jobdesk.job_events
WHERE job_id = %(job_id)s ORDER BY id;

-- name: select_user
SELECT max_active, max_daily, usage_day, created_on_day FROM jobdesk.users
WHERE user_id = %(user_id)s;

-- name: upsert_user_limits
INSERT INTO jobdesk.users AS u (user_id, max_active, max_daily)
VALUES (%(user_id)s, %(max_active)s, %(max_daily)s)
ON CONFLICT (user_id) DO UPDATE SET
    max_active = excluded.max_active, max_daily = excluded.max_daily;

-- name: list_user_jobs
-- %(before_id)s is '8' (above every id) for the first page, so the index range always applies.
SELECT *, NULL::timestamptz AS store_now FROM jobdesk.jobs
WHERE user_id = %(user_id)s
  AND id < %(before_id)s
  AND (%(project_id)s::text IS NULL OR project_id = %(project_id)s)
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))
  AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s))
ORDER BY id DESC
LIMIT %(limit)s;

-- name: list_user_jobs_changed_since
SELECT *, NULL::timestamptz AS store_now FROM jobdesk.jobs
WHERE user_id = %(user_id)s AND updated_at >= %(since)s
ORDER BY updated_at, id
LIMIT %(limit)s;

-- name: ping
SELECT 1 AS one;

-- name: ready_jobs
-- twin of: jobdesk.lifecycle.start, jobdesk.store.Store.ready_jobs
SELECT *, NULL::timestamptz AS store_now FROM jobdesk.jobs
WHERE status = 'pending'
  AND run_at <= coalesce(%(now)s::timestamptz, now())
  AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s))
ORDER BY priority DESC, id
LIMIT %(limit)s;

-- name: claim_ctes
-- twin of: jobdesk.lifecycle.start, jobdesk.store.Store.ready_jobs
-- A fragment (claim and complete_and_claim include it): lock up to %(limit)s ready rows
-- (jobdesk.lock_ready, migration 0005: FOR UPDATE SKIP LOCKED in queue order) behind a
-- MATERIALIZED CTE, an optimisation fence, so only those are updated; start them as
-- jobdesk.lifecycle.start does (the contract suite holds both to it); record the starts.
ready AS MATERIALIZED (
    SELECT id FROM jobdesk.lock_ready(
        %(types)s::text[], %(limit)s::integer, coalesce(%(now)s::timestamptz, now())
    ) AS id
), started AS (
    UPDATE jobdesk.jobs AS j SET
        status = 'processing',
        attempt = j.attempt + 1,
        worker_id = %(worker_id)s,
        started_at = coalesce(%(now)s::timestamptz, now()),
        lease_expires_at = coalesce(%(now)s::timestamptz, now())
                           + make_interval(secs => %(lease_seconds)s),
        progress = 0,
        progress_message = NULL,
        cancel_requested = false,
        error = NULL,
        updated_at = coalesce(%(now)s::timestamptz, now())
    FROM ready
    WHERE j.id = ready.id
    RETURNING j.*
), started_events AS (
    INSERT INTO jobdesk.job_events (job_id, at, status, attempt, worker_id)
    SELECT id, updated_at, status, attempt, worker_id FROM started
)

-- name: claim
-- twin of: jobdesk.store.Store.ready_jobs
-- One round trip: claim_ctes, then the started jobs in claim order.
WITH
-- include: claim_ctes
SELECT *, NULL::timestamptz AS store_now FROM started ORDER BY priority DESC, id;

-- name: complete_and_claim
-- twin of: jobdesk.lifecycle.hold, jobdesk.lifecycle.complete
-- A worker's whole cycle in one statement and one commit: complete a batch, claim the next.
-- The completion does what jobdesk.lifecycle.complete does, only where hold() would let
-- it (the job is processing, held by this worker under that attempt, its lease running,
-- its type one the worker may handle); PostgresStore sends any other completion through
-- update_jobs for its refusal. Rows are locked in id order first, as write_jobs does, so
-- that this and a user's batch cancel never deadlock. The claim is claim_ctes.
WITH c AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(completions)s::jsonb) AS c (
        id text, attempt integer, result jsonb
    )
), locked AS MATERIALIZED (
    SELECT j.id, j.ctid FROM jobdesk.jobs AS j
    WHERE j.id = ANY(%(ids)s::text[])
    ORDER BY j.id
    FOR UPDATE OF j
), done AS (
    UPDATE jobdesk.jobs AS j SET
        status = 'completed',
        result = c.result,
        error = NULL,
        progress = 100,
        lease_expires_at = NULL,
        finished_at = coalesce(%(now)s::timestamptz, now()),
        updated_at = coalesce(%(now)s::timestamptz, now())
    FROM c, locked
    -- By the locked row's address: a row that changed after this statement's snapshot
    -- is not seen, so its completion goes the slow way (update_jobs), which re-reads it.
    WHERE j.ctid = locked.ctid AND j.id = locked.id AND c.id = locked.id
      AND j.status = 'processing'
      AND j.worker_id = %(worker_id)s
      AND j.attempt = c.attempt
      AND j.lease_expires_at > coalesce(%(now)s::timestamptz, now())
      AND (%(worker_types)s::text[] IS NULL OR j.type = ANY(%(worker_types)s))
    RETURNING j.*
), done_events AS (
    INSERT INTO jobdesk.job_events (job_id, at, status, attempt, worker_id)
    SELECT id, updated_at, status, attempt, worker_id FROM done
),
-- include: claim_ctes
SELECT true AS completed, *, NULL::timestamptz AS store_now FROM done
UNION ALL
SELECT false AS completed, *, NULL::timestamptz AS store_now FROM started;

-- name: expired_leases
-- twin of: jobdesk.lifecycle.expire
SELECT *, xmin::text AS version, coalesce(%(now)s::timestamptz, now()) AS store_now
FROM jobdesk.jobs
WHERE status = 'processing' AND lease_expires_at <= coalesce(%(now)s::timestamptz, now())
ORDER BY lease_expires_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: prune_finished
-- twin of: jobdesk.models.JobStatus.is_finished
WITH doomed AS MATERIALIZED (
    SELECT id FROM jobdesk.jobs
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < %(older_than)s
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), events AS (
    DELETE FROM jobdesk.job_events AS e USING doomed WHERE e.job_id = doomed.id
)
DELETE FROM jobdesk.jobs AS j USING doomed WHERE j.id = doomed.id;

-- name: select_secret
SELECT value FROM jobdesk.meta WHERE key = 'secret';

-- name: insert_token
INSERT INTO jobdesk.tokens (key_id, kind, subject, secret_hash, types, created_at, expires_at)
VALUES (%(key_id)s, %(kind)s, %(subject)s, %(secret_hash)s, %(types)s, %(created_at)s,
        %(expires_at)s);

-- name: select_token
SELECT * FROM jobdesk.tokens WHERE kind = %(kind)s AND key_id = %(key_id)s;

-- name: revoke_tokens
UPDATE jobdesk.tokens SET revoked_at = coalesce(%(now)s::timestamptz, now())
WHERE kind = %(kind)s AND subject = %(subject)s AND revoked_at IS NULL;

-- name: list_tokens
SELECT * FROM jobdesk.tokens WHERE kind = %(kind)s ORDER BY created_at DESC, key_id;

-- name: stats_counts
-- Queue depth (every pending and processing job) and what finished since %(since)s. One
-- branch per partial index (the queue, the leases, the finished jobs): an IN over the
-- statuses would match none of them and read the whole table, old history and all.
SELECT type, status, count(*) AS count FROM (
    SELECT type, status FROM jobdesk.jobs WHERE status = 'pending'
    UNION ALL
    SELECT type, status FROM jobdesk.jobs WHERE status = 'processing'
    UNION ALL
    SELECT type, status FROM jobdesk.jobs
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at >= %(since)s
) AS counted
GROUP BY type, status
ORDER BY type, status;

-- name: stats_workers
-- The workers holding a job (the leases' index) or that finished one since %(since)s (the
-- finished jobs' index), as stats_counts reads them.
SELECT worker_id, sum(processing) AS processing, max(updated_at) AS last_seen FROM (
    SELECT worker_id, 1 AS processing, updated_at FROM jobdesk.jobs
    WHERE status = 'processing' AND worker_id IS NOT NULL
    UNION ALL
    SELECT worker_id, 0 AS processing, updated_at FROM jobdesk.jobs
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at >= %(since)s
      AND worker_id IS NOT NULL
) AS seen
GROUP BY worker_id
ORDER BY worker_id;

-- name: throughput
-- Jobs created (an id range: ids start with their creation time) and jobs finished (the
-- jobs_finished index) per minute since %(since)s, for the operator's dashboard. The id
-- range has both ends ('8' is above every id): a planner without statistics yet (a table
-- never analysed) takes a two-ended range for a narrow one, but "id >=" alone for a third
-- of the table, and would read all of it.
SELECT date_trunc('minute', created_at) AS minute, 'created' AS kind, count(*) AS count
FROM jobdesk.jobs
WHERE id >= %(since_id)s AND id < '8' AND created_at >= %(since)s
GROUP BY 1
UNION ALL
SELECT date_trunc('minute', finished_at) AS minute, status AS kind, count(*) AS count
FROM jobdesk.jobs
WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at >= %(since)s
GROUP BY 1, 2;

-- name: oldest_pending
SELECT min(created_at) AS oldest FROM jobdesk.jobs WHERE status = 'pending';

-- name: failed_jobs
SELECT * FROM jobdesk.jobs
WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at >= %(since)s
  AND status = 'failed'
ORDER BY finished_at DESC
LIMIT %(limit)s;

-- name: top_users
-- twin of: jobdesk.models.JobStatus.is_active, jobdesk.limits.usage
-- The users with the most active jobs (the partial indexes of the queue and of the leases
-- hold exactly the active jobs) and those who created the most today.
WITH active AS (
    SELECT user_id FROM jobdesk.jobs WHERE status = 'pending'
    UNION ALL
    SELECT user_id FROM jobdesk.jobs WHERE status = 'processing'
), busy AS (
    SELECT user_id, count(*) AS active FROM active
    GROUP BY user_id ORDER BY active DESC, user_id LIMIT %(limit)s
), daily AS (
    SELECT user_id FROM jobdesk.users
    WHERE usage_day = %(day)s ORDER BY created_on_day DESC, user_id LIMIT %(limit)s
), chosen AS (
    SELECT user_id FROM busy UNION SELECT user_id FROM daily
)
SELECT chosen.user_id,
       (SELECT count(*) FROM jobdesk.jobs AS j
        WHERE j.user_id = chosen.user_id AND j.status IN ('pending', 'processing')) AS active,
       coalesce((SELECT u.created_on_day FROM jobdesk.users AS u
                 WHERE u.user_id = chosen.user_id AND u.usage_day = %(day)s), 0)
           AS created_today
FROM chosen
ORDER BY active DESC, created_today DESC, chosen.user_id;

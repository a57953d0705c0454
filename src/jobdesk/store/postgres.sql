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
-- twin of: jobdesk.limits.created_today, jobdesk.limits.Limits.for_user
-- twin of: jobdesk.limits.check_daily, jobdesk.limits.check_waiting
-- twin of: jobdesk.scheduling.vtime_on_arrival, jobdesk.lifecycle.create
-- One round trip: jobdesk.create_job (migration 0007) locks the user's row, judges the
-- daily and waiting limits, and stores the job with its first history entry only if
-- they leave room, counting it as waiting (the arrival rule when it is the first); it
-- returns the numbers it judged by, for PostgresStore to raise jobdesk.limits' refusal.
SELECT * FROM jobdesk.create_job(
    %(id)s::text, %(user_id)s::text, %(project_id)s::text, %(type)s::text,
    %(input)s::jsonb, %(priority)s::integer, %(max_attempts)s::integer,
    %(run_at)s::timestamptz, %(idempotency_key)s::text, %(now)s::timestamptz,
    %(default_max_waiting)s::integer, %(default_max_daily)s::integer
);

-- name: lock_user_usage
-- A bulk create's start: locks the user's row (making it if needed) and reads its limits,
-- its count for the day and its waiting jobs, with the time the whole transaction stamps.
INSERT INTO jobdesk.users AS u (user_id) VALUES (%(user_id)s)
ON CONFLICT (user_id) DO UPDATE SET user_id = u.user_id
RETURNING max_running, max_waiting, max_daily, weight, usage_day, created_on_day, waiting,
          coalesce(%(now)s::timestamptz, now()) AS store_now;

-- name: insert_jobs
-- twin of: jobdesk.lifecycle.create
-- A bulk create's jobs of one user, as jobdesk.lifecycle.create made them, with their first
-- history entries. Each column that varies is one JSON array (the client joins the inputs'
-- JSON as validation serialized them, and json.dumps the rest in C), zipped by ROWS FROM;
-- what every job shares (user, time, status, attempt) is one parameter. run_at NULL: as
-- soon as possible, that is created_at.
WITH n AS MATERIALIZED (
    SELECT * FROM ROWS FROM (
        json_array_elements_text(%(ids)s::json),
        json_array_elements_text(%(project_ids)s::json),
        json_array_elements_text(%(types)s::json),
        jsonb_array_elements(%(inputs)s::jsonb),
        json_array_elements_text(%(priorities)s::json),
        json_array_elements_text(%(max_attempts)s::json),
        json_array_elements_text(%(run_ats)s::json),
        json_array_elements_text(%(traceparents)s::json)
    ) WITH ORDINALITY AS n (
        id, project_id, type, input, priority, max_attempts, run_at, traceparent, position
    )
), inserted AS (
    INSERT INTO jobdesk.jobs (
        id, user_id, project_id, type, status, input, priority, attempt, max_attempts,
        attempt_offset, created_at, run_at, updated_at, cancel_requested, traceparent
    )
    SELECT id, %(user_id)s, project_id, type, %(status)s, input, priority::integer,
           %(attempt)s, max_attempts::integer, 0, %(created_at)s,
           coalesce(run_at::timestamptz, %(created_at)s), %(created_at)s, false, traceparent
    FROM n ORDER BY position
)
INSERT INTO jobdesk.job_events (job_id, at, status, attempt)
SELECT id, %(created_at)s, %(status)s, %(attempt)s FROM n ORDER BY position;

-- name: count_created
-- twin of: jobdesk.scheduling.vtime_on_arrival
-- A bulk create's end: the day's count, the user's new waiting jobs, and the arrival rule
-- when they had none.
UPDATE jobdesk.users AS u SET
    usage_day = %(day)s,
    created_on_day = %(count)s,
    waiting = u.waiting + %(added)s,
    vtime = CASE WHEN u.waiting = 0 THEN jobdesk.arrival_vtime(u.user_id, u.vtime)
                 ELSE u.vtime END
WHERE u.user_id = %(user_id)s;

-- name: count_running
-- A user's jobs processing now (jobs_by_user_status), bounded by their running cap.
SELECT count(*) FROM jobdesk.jobs
WHERE user_id = %(user_id)s AND status = 'processing';

-- name: write_jobs
-- twin of: jobdesk.scheduling.vtime_on_arrival
-- One statement for a batch: every job's new state and the history entries of those
-- whose status changed, in order, as JSON arrays of objects (one parameter each: far
-- cheaper for the client than an array per column). All or nothing: it first locks the
-- rows still at the version each new state was decided from (in id order), and writes
-- only if every one is; it answers whether it wrote.
-- With them, the users the batch moved jobs into or out of pending for (%(users)s): locked
-- after the jobs, in user_id order; their waiting count moved by `waiting`, and either
-- their clock, day and count as decided under their lock (the locked path: `vtime` set),
-- or the arrival rule when they had nothing waiting (jobdesk.arrival_vtime). And the
-- types whose rate a start by id spent (%(types)s: their rows locked by the caller).
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
), d AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(users)s::jsonb) AS d (
        user_id text, waiting integer, vtime double precision, usage_day date,
        created_on_day integer
    )
), locked_users AS MATERIALIZED (
    SELECT u.user_id FROM jobdesk.users AS u, verdict
    WHERE u.user_id IN (SELECT d.user_id FROM d) AND verdict.unchanged
    ORDER BY u.user_id
    FOR UPDATE OF u
), users_written AS (
    UPDATE jobdesk.users AS u SET
        waiting = u.waiting + d.waiting,
        vtime = coalesce(d.vtime, CASE WHEN u.waiting = 0 AND d.waiting > 0
                                       THEN jobdesk.arrival_vtime(u.user_id, u.vtime)
                                       ELSE u.vtime END),
        usage_day = coalesce(d.usage_day, u.usage_day),
        created_on_day = coalesce(d.created_on_day, u.created_on_day)
    FROM d, locked_users
    WHERE u.user_id = d.user_id AND locked_users.user_id = d.user_id
), types_written AS (
    UPDATE jobdesk.type_limits AS t SET next_start_at = g.next_start_at
    FROM jsonb_to_recordset(%(types)s::jsonb) AS g (type text, next_start_at timestamptz),
         verdict
    WHERE t.type = g.type AND verdict.unchanged
)
SELECT unchanged FROM verdict;

-- name: select_events
SELECT job_id, at, status, attempt, worker_id, error FROM jobdesk.job_events
WHERE job_id = %(job_id)s ORDER BY id;

-- name: select_user
SELECT max_running, max_waiting, max_daily, weight, usage_day, created_on_day, waiting
FROM jobdesk.users
WHERE user_id = %(user_id)s;

-- name: upsert_user_limits
INSERT INTO jobdesk.users AS u (user_id, max_running, max_waiting, max_daily, weight)
VALUES (%(user_id)s, %(max_running)s, %(max_waiting)s, %(max_daily)s, %(weight)s)
ON CONFLICT (user_id) DO UPDATE SET
    max_running = excluded.max_running, max_waiting = excluded.max_waiting,
    max_daily = excluded.max_daily, weight = excluded.weight;

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

-- name: claim
-- twin of: jobdesk.scheduling.plan, jobdesk.scheduling.candidates, jobdesk.lifecycle.start
-- One round trip: jobdesk.claim_fair (migrations 0007, 0011) walks the waiting users, plans and
-- writes the starts; the started jobs come back in plan order.
SELECT c.*, NULL::timestamptz AS store_now
FROM jobdesk.claim_fair(
    %(worker_id)s::text, %(types)s::text[], %(limit)s::integer, %(now)s::timestamptz,
    %(lease_seconds)s::double precision, %(default_max_running)s::integer
) WITH ORDINALITY AS c
ORDER BY c.ordinality;

-- name: complete_and_claim
-- twin of: jobdesk.lifecycle.hold, jobdesk.lifecycle.complete, jobdesk.scheduling.plan
-- A worker's whole cycle in one statement and one commit: complete a batch, claim the next.
-- The completion does what jobdesk.lifecycle.complete does, only where hold() would let
-- it (the job is processing, held by this worker under that attempt, its lease running,
-- its type one the worker may handle); PostgresStore sends any other completion through
-- update_jobs for its refusal. Rows are locked in id order first, as write_jobs does, so
-- that this and a user's batch cancel never deadlock. The claim is jobdesk.claim_fair's.
WITH c AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(completions)s::jsonb) AS c (
        id text, attempt integer, result jsonb
    )
), locked AS MATERIALIZED (
    -- One primary-key lookup per id, in the order of %(ids)s (sorted): a plan the
    -- statistics of a table that just grew cannot turn into a scan of every job.
    SELECT l.* FROM unnest(%(ids)s::text[]) AS i (id)
    CROSS JOIN LATERAL (
        SELECT j.id, j.ctid, j.status, j.worker_id, j.attempt, j.lease_expires_at, j.type
        FROM jobdesk.jobs AS j WHERE j.id = i.id FOR UPDATE OF j
    ) AS l
), held AS MATERIALIZED (
    -- The locked jobs hold() lets this worker complete.
    SELECT locked.ctid FROM locked JOIN c ON c.id = locked.id
    WHERE locked.status = 'processing'
      AND locked.worker_id = %(worker_id)s
      AND locked.attempt = c.attempt
      AND locked.lease_expires_at > coalesce(%(now)s::timestamptz, now())
      AND (%(worker_types)s::text[] IS NULL OR locked.type = ANY(%(worker_types)s))
), done AS (
    UPDATE jobdesk.jobs AS j SET
        status = 'completed',
        result = c.result,
        error = NULL,
        progress = 100,
        lease_expires_at = NULL,
        finished_at = coalesce(%(now)s::timestamptz, now()),
        updated_at = coalesce(%(now)s::timestamptz, now())
    FROM c
    -- By the held rows' addresses (a TID scan; a scan of the processing jobs would read
    -- every dead row version a drain leaves before vacuum). A row that changed after this
    -- statement's snapshot is not seen, so its completion goes the slow way
    -- (update_jobs), which re-reads it.
    WHERE j.ctid = ANY(ARRAY(SELECT held.ctid FROM held)) AND c.id = j.id
    RETURNING j.*
), done_events AS (
    INSERT INTO jobdesk.job_events (job_id, at, status, attempt, worker_id)
    SELECT id, updated_at, status, attempt, worker_id FROM done
    RETURNING job_id
),
-- The claim runs after the completions and their history (it is joined to the count of
-- the history rows written), so it sees the running slots and pool places they freed (a
-- volatile function's statements see what the statement calling it wrote before calling
-- it), and the history says the ends before the starts they made room for: an
-- unreferenced data-modifying CTE would run after the main query, and its history rows
-- would come after the claim's.
finished AS MATERIALIZED (
    SELECT count(*) AS count FROM done_events
), started AS MATERIALIZED (
    SELECT c.*
    FROM finished,
         LATERAL jobdesk.claim_fair(
             %(worker_id)s::text, %(types)s::text[],
             %(limit)s::integer + 0 * finished.count::integer, %(now)s::timestamptz,
             %(lease_seconds)s::double precision, %(default_max_running)s::integer
         ) WITH ORDINALITY AS c
)
SELECT true AS completed, *, NULL::bigint AS ordinality, NULL::timestamptz AS store_now
FROM done
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

-- name: lock_users_and_types
-- The locked path of update_jobs, after its jobs: their users' rows in user_id order, then
-- the rows of their limited types in type order (a start by id holds both, as a claim does).
WITH locked_users AS MATERIALIZED (
    SELECT user_id FROM jobdesk.users
    WHERE user_id = ANY(%(user_ids)s::text[])
    ORDER BY user_id
    FOR UPDATE
), locked_types AS MATERIALIZED (
    SELECT t.type FROM jobdesk.type_limits AS t
    WHERE t.type = ANY(%(types)s::text[]) AND (SELECT count(*) FROM locked_users) >= 0
    ORDER BY t.type
    FOR UPDATE
)
SELECT (SELECT count(*) FROM locked_users) AS users, (SELECT count(*) FROM locked_types) AS types;

-- name: user_states
-- The locked users as the rules need them, read after the locks (a fresh snapshot: a claim
-- that committed while this waited counts): limits, clock, waiting and daily counts, their
-- running jobs, and the floor of jobdesk.scheduling.vtime_on_arrival (the smallest clock
-- among the other waiting users).
SELECT u.user_id, u.max_running, u.max_waiting, u.max_daily, u.weight, u.waiting, u.vtime,
       u.usage_day, u.created_on_day,
       (SELECT count(*) FROM jobdesk.jobs AS r
        WHERE r.user_id = u.user_id AND r.status = 'processing') AS running,
       (SELECT min(o.vtime) FROM jobdesk.users AS o
        WHERE o.waiting > 0 AND o.user_id <> u.user_id) AS floor
FROM jobdesk.users AS u
WHERE u.user_id = ANY(%(user_ids)s::text[]);

-- name: type_gates
-- The limited types (all of them, or those of %(types)s) with their jobs processing now
-- (jobs_running), for jobdesk.scheduling.TypeGate.
SELECT t.type, t.max_running, t.rate_count, t.rate_period, t.next_start_at,
       (SELECT count(*) FROM jobdesk.jobs AS r
        WHERE r.type = t.type AND r.status = 'processing') AS running,
       coalesce(%(now)s::timestamptz, now()) AS store_now
FROM jobdesk.type_limits AS t
WHERE %(types)s::text[] IS NULL OR t.type = ANY(%(types)s::text[])
ORDER BY t.type;

-- name: walk
-- twin of: jobdesk.scheduling.user_order_key
-- One page of the claim's walk for ready_jobs, without locks: waiting users by (vtime,
-- user_id) after %(after_vtime)s/%(after_user)s (users_waiting), each with their running
-- jobs and their first %(limit)s due pending jobs of the worker's types whose gate is
-- open (jobs_user_queue), one row per job (a user without one: one row, no job).
SELECT w.user_id AS walk_user, w.vtime AS walk_vtime, w.weight AS walk_weight,
       w.max_running AS walk_max_running, w.running AS walk_running, j.*,
       NULL::timestamptz AS store_now
FROM (
    SELECT u.user_id, u.vtime, coalesce(u.weight, 1.0) AS weight,
           coalesce(u.max_running, %(default_max_running)s::integer) AS max_running,
           (SELECT count(*) FROM jobdesk.jobs AS r
            WHERE r.user_id = u.user_id AND r.status = 'processing') AS running
    FROM jobdesk.users AS u
    WHERE u.waiting > 0
      AND (%(after_user)s::text IS NULL
           OR (u.vtime, u.user_id) > (%(after_vtime)s::double precision, %(after_user)s::text))
    ORDER BY u.vtime, u.user_id
    LIMIT %(page)s
) AS w
LEFT JOIN LATERAL (
    SELECT * FROM jobdesk.jobs AS j
    WHERE j.user_id = w.user_id AND j.status = 'pending' AND j.run_at <= %(now)s::timestamptz
      AND (%(types)s::text[] IS NULL OR j.type = ANY(%(types)s::text[]))
      AND j.type <> ALL(%(closed)s::text[])
      AND w.running < w.max_running
    ORDER BY j.priority DESC, j.id
    LIMIT %(limit)s
) AS j ON true
ORDER BY w.vtime, w.user_id, j.priority DESC, j.id;

-- name: wait_facts
-- twin of: jobdesk.scheduling.user_order_key
-- What explains a pending job (jobdesk.scheduling.why_waiting): the store's time, the
-- user's running jobs and cap override, and how many of their due pending jobs come before
-- it in their own order (priority, then age), counted up to %(bound)s.
SELECT coalesce(%(now)s::timestamptz, now()) AS store_now,
       (SELECT u.max_running FROM jobdesk.users AS u WHERE u.user_id = %(user_id)s)
           AS max_running,
       (SELECT count(*) FROM jobdesk.jobs AS r
        WHERE r.user_id = %(user_id)s AND r.status = 'processing') AS running,
       (SELECT count(*) FROM (
            SELECT 1 FROM jobdesk.jobs AS j
            WHERE j.user_id = %(user_id)s AND j.status = 'pending'
              AND j.run_at <= coalesce(%(now)s::timestamptz, now())
              AND (j.priority > %(priority)s
                   OR (j.priority = %(priority)s AND j.id < %(id)s))
            LIMIT %(bound)s
        ) AS before) AS ahead;

-- name: upsert_type_limits
-- A type's pool and rate. A rate's next start is kept (never later than one interval of
-- the new rate from now), dropped with the rate.
INSERT INTO jobdesk.type_limits AS t (type, max_running, rate_count, rate_period)
VALUES (%(type)s, %(max_running)s, %(rate_count)s, %(rate_period)s)
ON CONFLICT (type) DO UPDATE SET
    max_running = excluded.max_running,
    rate_count = excluded.rate_count,
    rate_period = excluded.rate_period,
    next_start_at = CASE
        WHEN excluded.rate_count IS NULL THEN NULL
        ELSE least(t.next_start_at,
                   coalesce(%(now)s::timestamptz, now())
                   + make_interval(secs => excluded.rate_period / excluded.rate_count))
    END;

-- name: delete_type_limits
DELETE FROM jobdesk.type_limits WHERE type = %(type)s;

-- name: select_type_limits
SELECT type, max_running, rate_count, rate_period FROM jobdesk.type_limits ORDER BY type;

-- name: set_traceparent
-- The W3C traceparent of the span that created a job (jobdesk.tracing, when on), written
-- in the create's transaction: a worker never claims the job without it.
UPDATE jobdesk.jobs SET traceparent = %(traceparent)s WHERE id = %(id)s;

-- Every query SQLiteStore runs, by name. Parameters are always bound (:name), never
-- formatted in. The active statuses written here are those of JobStatus.is_active.
-- A query that restates a Python rule names it in a '-- twin of:' line; every row of
-- tests/integration/test_rule_twins.py runs through both and fails when they differ.

-- name: select_job
SELECT * FROM jobs WHERE id = :id;

-- name: select_user_job
SELECT * FROM jobs WHERE id = :id AND user_id = :user_id;

-- name: select_job_by_idempotency_key
SELECT * FROM jobs WHERE user_id = :user_id AND idempotency_key = :idempotency_key;

-- name: insert_job
-- twin of: jobdesk.lifecycle.create
INSERT INTO jobs (
    id, user_id, project_id, type, status, input, priority, attempt, max_attempts,
    attempt_offset, created_at, run_at, updated_at, cancel_requested, idempotency_key,
    traceparent
) VALUES (
    :id, :user_id, :project_id, :type, :status, :input, :priority, 0, :max_attempts,
    0, :created_at, :run_at, :updated_at, 0, :idempotency_key, :traceparent
);

-- name: update_job
UPDATE jobs SET
    status = :status, result = :result, error = :error, progress = :progress,
    progress_message = :progress_message, attempt = :attempt, max_attempts = :max_attempts,
    attempt_offset = :attempt_offset, run_at = :run_at, started_at = :started_at,
    finished_at = :finished_at, updated_at = :updated_at, worker_id = :worker_id,
    lease_expires_at = :lease_expires_at, cancel_requested = :cancel_requested
WHERE id = :id;

-- name: insert_event
INSERT INTO job_events (job_id, at, status, attempt, worker_id, error)
VALUES (:job_id, :at, :status, :attempt, :worker_id, :error);

-- name: select_events
SELECT job_id, at, status, attempt, worker_id, error FROM job_events
WHERE job_id = :job_id ORDER BY id;

-- name: select_user
SELECT * FROM users WHERE user_id = :user_id;

-- name: admit_user
-- Counts :count creations (or retries) on :day and :count more waiting jobs, once
-- jobdesk.limits.check_daily and check_waiting have let them in; :vtime is the clock
-- jobdesk.scheduling.vtime_on_arrival gave (the user's own when they already waited).
INSERT INTO users (user_id, usage_day, created_on_day, waiting, vtime)
VALUES (:user_id, :day, :created_on_day, :count, :vtime)
ON CONFLICT (user_id) DO UPDATE SET
    usage_day = excluded.usage_day, created_on_day = excluded.created_on_day,
    waiting = waiting + excluded.waiting, vtime = excluded.vtime;

-- name: add_waiting
-- :count more of the user's jobs back to pending (requeues); :vtime as for admit_user.
INSERT INTO users (user_id, waiting, vtime) VALUES (:user_id, :count, :vtime)
ON CONFLICT (user_id) DO UPDATE SET waiting = waiting + excluded.waiting, vtime = excluded.vtime;

-- name: remove_waiting
-- :count of the user's pending jobs started (their clock now :vtime) or cancelled (NULL:
-- the clock stays).
UPDATE users SET waiting = waiting - :count, vtime = coalesce(:vtime, vtime)
WHERE user_id = :user_id;

-- name: arrival_floor
-- twin of: jobdesk.scheduling.vtime_on_arrival
-- Its floor: the smallest clock among the other waiting users.
SELECT min(vtime) FROM users INDEXED BY users_waiting
WHERE waiting > 0 AND user_id <> :user_id;

-- name: upsert_user_limits
INSERT INTO users (user_id, max_running, max_waiting, max_daily, weight)
VALUES (:user_id, :max_running, :max_waiting, :max_daily, :weight)
ON CONFLICT (user_id) DO UPDATE SET
    max_running = excluded.max_running, max_waiting = excluded.max_waiting,
    max_daily = excluded.max_daily, weight = excluded.weight;

-- name: count_running
SELECT count(*) FROM jobs WHERE user_id = :user_id AND status = 'processing';

-- name: waiting_users
-- The walk: the users with pending jobs, by their clocks (jobdesk.scheduling.candidates).
SELECT * FROM users INDEXED BY users_waiting WHERE waiting > 0 ORDER BY vtime, user_id;

-- name: user_queue
-- twin of: jobdesk.scheduling.user_order_key, jobdesk.lifecycle.start
-- One user's first :limit pending jobs that may start now: due, of a type the worker
-- takes (:types, NULL for any) and not of a type whose gate is closed (:closed).
SELECT * FROM jobs INDEXED BY jobs_user_queue
WHERE user_id = :user_id AND status = 'pending'
  AND run_at <= :now
  AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
  AND type NOT IN (SELECT value FROM json_each(:closed))
ORDER BY priority DESC, id
LIMIT :limit;

-- name: count_ahead
-- twin of: jobdesk.scheduling.user_order_key
-- The user's due pending jobs before this one in their own order, counted up to :bound.
SELECT count(*) FROM (
    SELECT 1 FROM jobs INDEXED BY jobs_user_queue
    WHERE user_id = :user_id AND status = 'pending' AND run_at <= :now
      AND (priority > :priority OR (priority = :priority AND id < :id))
    LIMIT :bound
);

-- name: type_gates
-- Every limited type with its jobs processing now (its pool's use).
SELECT type_limits.*,
       (SELECT count(*) FROM jobs INDEXED BY jobs_running_by_type
        WHERE jobs.type = type_limits.type AND jobs.status = 'processing') AS running
FROM type_limits
ORDER BY type;

-- name: type_gate
SELECT type_limits.*,
       (SELECT count(*) FROM jobs INDEXED BY jobs_running_by_type
        WHERE jobs.type = type_limits.type AND jobs.status = 'processing') AS running
FROM type_limits
WHERE type = :type;

-- name: upsert_type_limits
-- A type's rate kept keeps its next start; a rate removed forgets it.
INSERT INTO type_limits (type, max_running, rate_count, rate_period)
VALUES (:type, :max_running, :rate_count, :rate_period)
ON CONFLICT (type) DO UPDATE SET
    max_running = excluded.max_running, rate_count = excluded.rate_count,
    rate_period = excluded.rate_period,
    next_start_at = CASE WHEN excluded.rate_count IS NULL THEN NULL ELSE next_start_at END;

-- name: delete_type_limits
DELETE FROM type_limits WHERE type = :type;

-- name: set_next_start
UPDATE type_limits SET next_start_at = :next_start_at WHERE type = :type;

-- name: list_user_jobs
-- :before_id is '8' (above every id) for the first page, so the index range always applies.
SELECT * FROM jobs
WHERE user_id = :user_id
  AND id < :before_id
  AND (:project_id IS NULL OR project_id = :project_id)
  AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
ORDER BY id DESC
LIMIT :limit;

-- name: list_user_jobs_by_status
-- One newest-first index range per asked status (:status_1 .. :status_5, unused ones
-- NULL, which match nothing), merged: a few active jobs are found at once even among a
-- user's 50,000 finished ones, without walking them.
SELECT * FROM (
    SELECT * FROM (
        SELECT * FROM jobs INDEXED BY jobs_by_user_status
        WHERE user_id = :user_id AND status = :status_1 AND id < :before_id
          AND (:project_id IS NULL OR project_id = :project_id)
          AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
        ORDER BY id DESC LIMIT :limit
    )
    UNION ALL
    SELECT * FROM (
        SELECT * FROM jobs INDEXED BY jobs_by_user_status
        WHERE user_id = :user_id AND status = :status_2 AND id < :before_id
          AND (:project_id IS NULL OR project_id = :project_id)
          AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
        ORDER BY id DESC LIMIT :limit
    )
    UNION ALL
    SELECT * FROM (
        SELECT * FROM jobs INDEXED BY jobs_by_user_status
        WHERE user_id = :user_id AND status = :status_3 AND id < :before_id
          AND (:project_id IS NULL OR project_id = :project_id)
          AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
        ORDER BY id DESC LIMIT :limit
    )
    UNION ALL
    SELECT * FROM (
        SELECT * FROM jobs INDEXED BY jobs_by_user_status
        WHERE user_id = :user_id AND status = :status_4 AND id < :before_id
          AND (:project_id IS NULL OR project_id = :project_id)
          AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
        ORDER BY id DESC LIMIT :limit
    )
    UNION ALL
    SELECT * FROM (
        SELECT * FROM jobs INDEXED BY jobs_by_user_status
        WHERE user_id = :user_id AND status = :status_5 AND id < :before_id
          AND (:project_id IS NULL OR project_id = :project_id)
          AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
        ORDER BY id DESC LIMIT :limit
    )
)
ORDER BY id DESC
LIMIT :limit;

-- name: list_user_jobs_changed_since
SELECT * FROM jobs
WHERE user_id = :user_id AND updated_at >= :since
ORDER BY updated_at, id
LIMIT :limit;

-- name: ping
SELECT 1;

-- name: expired_leases
-- twin of: jobdesk.lifecycle.expire
SELECT * FROM jobs
WHERE status = 'processing' AND lease_expires_at <= :now
ORDER BY lease_expires_at
LIMIT :limit;

-- name: select_secret
SELECT value FROM meta WHERE key = 'secret';

-- name: insert_token
INSERT INTO tokens (key_id, kind, subject, secret_hash, types, created_at, expires_at)
VALUES (:key_id, :kind, :subject, :secret_hash, :types, :created_at, :expires_at);

-- name: select_token
SELECT * FROM tokens WHERE kind = :kind AND key_id = :key_id;

-- name: revoke_tokens
UPDATE tokens SET revoked_at = :now
WHERE kind = :kind AND subject = :subject AND revoked_at IS NULL;

-- name: list_tokens
SELECT * FROM tokens WHERE kind = :kind ORDER BY created_at DESC, key_id;

-- name: finished_before
-- twin of: jobdesk.models.JobStatus.is_finished
SELECT id FROM jobs
WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < :older_than
ORDER BY finished_at
LIMIT :limit;

-- name: delete_events_of
DELETE FROM job_events WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: delete_jobs
DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: stats_counts
-- Queue depth (every pending and processing job) and what finished since :since. One
-- branch per partial index (the queue, the leases, the finished jobs): an IN over the
-- statuses would match none of them and read the whole table, old history and all.
SELECT type, status, count(*) AS count FROM (
    SELECT type, status FROM jobs INDEXED BY jobs_queue WHERE status = 'pending'
    UNION ALL
    SELECT type, status FROM jobs INDEXED BY jobs_leases WHERE status = 'processing'
    UNION ALL
    SELECT type, status FROM jobs INDEXED BY jobs_finished
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at >= :since
)
GROUP BY type, status
ORDER BY type, status;

-- name: stats_workers
-- The workers holding a job (the leases' index) or that finished one since :since (the
-- finished jobs' index), as stats_counts reads them.
SELECT worker_id, sum(processing) AS processing, max(updated_at) AS last_seen FROM (
    SELECT worker_id, 1 AS processing, updated_at FROM jobs INDEXED BY jobs_leases
    WHERE status = 'processing' AND worker_id IS NOT NULL
    UNION ALL
    SELECT worker_id, 0 AS processing, updated_at FROM jobs INDEXED BY jobs_finished
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at >= :since
      AND worker_id IS NOT NULL
)
GROUP BY worker_id
ORDER BY worker_id;

-- name: throughput
-- Jobs created (an id range: ids start with their creation time) and jobs finished (the
-- jobs_finished index) per minute since :since, for the operator's dashboard.
SELECT substr(created_at, 1, 16) AS minute, 'created' AS kind, count(*) AS count
FROM jobs
WHERE id >= :since_id AND created_at >= :since
GROUP BY minute
UNION ALL
SELECT substr(finished_at, 1, 16) AS minute, status AS kind, count(*) AS count
FROM jobs INDEXED BY jobs_finished
WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at >= :since
GROUP BY minute, status;

-- name: oldest_pending
SELECT min(created_at) AS oldest FROM jobs INDEXED BY jobs_queue WHERE status = 'pending';

-- name: failed_jobs
SELECT * FROM jobs INDEXED BY jobs_finished
WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at >= :since
  AND status = 'failed'
ORDER BY finished_at DESC
LIMIT :limit;

-- name: top_users
-- twin of: jobdesk.models.JobStatus.is_active, jobdesk.limits.usage
-- The users with the most active jobs (the two partial indexes of the queue and of the
-- leases hold exactly the active jobs) and those who created the most today.
WITH active AS (
    SELECT user_id FROM jobs INDEXED BY jobs_queue WHERE status = 'pending'
    UNION ALL
    SELECT user_id FROM jobs INDEXED BY jobs_leases WHERE status = 'processing'
), busy AS (
    SELECT user_id, count(*) AS active FROM active
    GROUP BY user_id ORDER BY active DESC, user_id LIMIT :limit
), daily AS (
    SELECT user_id FROM users INDEXED BY users_by_day
    WHERE usage_day = :day ORDER BY created_on_day DESC, user_id LIMIT :limit
), chosen AS (
    SELECT user_id FROM busy UNION SELECT user_id FROM daily
)
SELECT chosen.user_id,
       (SELECT count(*) FROM jobs
        WHERE jobs.user_id = chosen.user_id AND status IN ('pending', 'processing')) AS active,
       coalesce((SELECT created_on_day FROM users
                 WHERE users.user_id = chosen.user_id AND usage_day = :day), 0) AS created_today
FROM chosen
ORDER BY active DESC, created_today DESC, chosen.user_id;

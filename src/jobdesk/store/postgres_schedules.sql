-- The PostgreSQL store's schedule queries (jobdesk.store.postgres_schedules), by name.

-- name: insert_schedule
INSERT INTO jobdesk.schedules (
    name, cron, timezone, missed, type, input, user_id, project_id, paused, next_run_at,
    created_at, updated_at, last_tick_at, last_job_id, last_error
) VALUES (
    %(name)s, %(cron)s, %(timezone)s, %(missed)s, %(type)s, %(input)s::jsonb, %(user_id)s,
    %(project_id)s, %(paused)s, %(next_run_at)s, %(created_at)s, %(updated_at)s,
    %(last_tick_at)s, %(last_job_id)s, %(last_error)s
)
ON CONFLICT (name) DO NOTHING;

-- name: store_now
SELECT coalesce(%(now)s::timestamptz, now()) AS store_now;

-- name: select_schedule
SELECT * FROM jobdesk.schedules WHERE name = %(name)s;

-- name: lock_schedule
SELECT *, coalesce(%(now)s::timestamptz, now()) AS store_now
FROM jobdesk.schedules WHERE name = %(name)s
FOR UPDATE;

-- name: list_schedules
SELECT * FROM jobdesk.schedules ORDER BY name LIMIT %(limit)s;

-- name: write_schedule
UPDATE jobdesk.schedules SET
    paused = %(paused)s,
    next_run_at = %(next_run_at)s,
    updated_at = %(updated_at)s,
    last_tick_at = %(last_tick_at)s,
    last_job_id = %(last_job_id)s,
    last_error = %(last_error)s
WHERE name = %(name)s;

-- name: delete_schedule
DELETE FROM jobdesk.schedules WHERE name = %(name)s;

-- name: due_schedules
-- twin of: jobdesk.schedules.is_due
-- The schedules a runner fires now, earliest tick first, locked; those another runner
-- holds are passed over (it fires them), so runners never wait for each other.
SELECT s.*, n.store_now
FROM (SELECT coalesce(%(now)s::timestamptz, now()) AS store_now) AS n,
     LATERAL (
         SELECT * FROM jobdesk.schedules AS s
         WHERE NOT s.paused AND s.next_run_at <= n.store_now
         ORDER BY s.next_run_at, s.name
         LIMIT %(limit)s
         FOR UPDATE SKIP LOCKED
     ) AS s;

-- name: any_due
-- twin of: jobdesk.schedules.is_due
-- Whether a runner has anything to fire: one autocommitted read, no transaction.
SELECT 1 FROM jobdesk.schedules
WHERE NOT paused AND next_run_at <= coalesce(%(now)s::timestamptz, now())
LIMIT 1;

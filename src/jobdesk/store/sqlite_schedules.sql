-- The SQLite store's schedule queries (jobdesk.store.sqlite_schedules), by name.

-- name: insert_schedule
INSERT INTO schedules (
    name, cron, timezone, missed, type, input, user_id, project_id, paused, next_run_at,
    created_at, updated_at, last_tick_at, last_job_id, last_error
) VALUES (
    :name, :cron, :timezone, :missed, :type, :input, :user_id, :project_id, :paused,
    :next_run_at, :created_at, :updated_at, :last_tick_at, :last_job_id, :last_error
)
ON CONFLICT (name) DO NOTHING;

-- name: select_schedule
SELECT * FROM schedules WHERE name = :name;

-- name: list_schedules
SELECT * FROM schedules ORDER BY name LIMIT :limit;

-- name: write_schedule
UPDATE schedules SET
    paused = :paused,
    next_run_at = :next_run_at,
    updated_at = :updated_at,
    last_tick_at = :last_tick_at,
    last_job_id = :last_job_id,
    last_error = :last_error
WHERE name = :name;

-- name: delete_schedule
DELETE FROM schedules WHERE name = :name;

-- name: due_schedules
-- twin of: jobdesk.schedules.is_due
-- The schedules a runner fires now, earliest tick first (the write lock holds them).
SELECT * FROM schedules
WHERE paused = 0 AND next_run_at <= :now
ORDER BY next_run_at, name
LIMIT :limit;

-- name: any_due
-- twin of: jobdesk.schedules.is_due
-- Whether a runner has anything to fire, asked without the write lock.
SELECT 1 FROM schedules WHERE paused = 0 AND next_run_at <= :now LIMIT 1;

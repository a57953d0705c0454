-- jobdesk's group queries for PostgreSQL (schema version 9), each by name.
-- Groups' status and progress are derived in Python (jobdesk.groups.summarize) from the
-- counts these queries read; no query here decides a group's status.

-- name: create_group
-- twin of: jobdesk.limits.check_daily, jobdesk.limits.check_waiting, jobdesk.lifecycle.create
-- One round trip: jobdesk.create_group (migration 0009) locks the user's row, judges the
-- daily and waiting limits for the whole group, and stores the group, its jobs, their
-- history and the membership only if they leave room; it returns the numbers it judged by.
SELECT * FROM jobdesk.create_group(
    %(id)s::text, %(user_id)s::text, %(project_id)s::text, %(name)s::text,
    %(on_complete)s::jsonb, %(jobs)s::jsonb, %(now)s::timestamptz,
    %(default_max_waiting)s::integer, %(default_max_daily)s::integer
);

-- name: select_group
SELECT * FROM jobdesk.groups
WHERE id = %(id)s AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s);

-- name: list_user_groups
SELECT * FROM jobdesk.groups
WHERE user_id = %(user_id)s
  AND id < %(before_id)s
  AND (%(project_id)s::text IS NULL OR project_id = %(project_id)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: group_counts
-- Per group of %(ids)s and status: how many jobs, and the sum of their progress.
SELECT gj.group_id, j.status, count(*) AS count, sum(j.progress) AS progress
FROM jobdesk.group_jobs AS gj JOIN jobdesk.jobs AS j ON j.id = gj.job_id
WHERE gj.group_id = ANY(%(ids)s::text[])
GROUP BY gj.group_id, j.status;

-- name: list_group_jobs
SELECT j.*, NULL::timestamptz AS store_now
FROM jobdesk.group_jobs AS gj JOIN jobdesk.jobs AS j ON j.id = gj.job_id
WHERE gj.group_id = %(group_id)s AND gj.position > %(after)s
ORDER BY gj.position
LIMIT %(limit)s;

-- name: group_job_ids
SELECT j.id FROM jobdesk.group_jobs AS gj JOIN jobdesk.jobs AS j ON j.id = gj.job_id
WHERE gj.group_id = %(group_id)s AND j.status = ANY(%(statuses)s::text[])
ORDER BY gj.position;

-- name: set_group_cancelled
UPDATE jobdesk.groups
SET cancelled_at = CASE WHEN %(cancelled)s THEN coalesce(%(now)s::timestamptz, now()) END
WHERE id = %(id)s;

-- name: groups_to_finish
-- twin of: jobdesk.groups.is_finished
-- Groups whose fan-in job is due: not cancelled, and none of their jobs active (pending or
-- processing, jobdesk.models.JobStatus.is_active).
SELECT * FROM jobdesk.groups AS g
WHERE g.on_complete IS NOT NULL AND g.on_complete_job_id IS NULL AND g.cancelled_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM jobdesk.group_jobs AS gj JOIN jobdesk.jobs AS j ON j.id = gj.job_id
      WHERE gj.group_id = g.id AND j.status IN ('pending', 'processing')
  )
ORDER BY g.id
LIMIT %(limit)s;

-- name: set_fan_in
UPDATE jobdesk.groups SET on_complete_job_id = %(job_id)s WHERE id = %(id)s;

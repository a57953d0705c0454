-- jobdesk's group queries for SQLite (schema version 6), each by name.
-- Groups' status and progress are derived in Python (jobdesk.groups.summarize) from the
-- counts these queries read; no query here decides a group's status.

-- name: insert_group
INSERT INTO groups (id, user_id, project_id, name, on_complete, created_at)
VALUES (:id, :user_id, :project_id, :name, :on_complete, :created_at);

-- name: insert_group_jobs
INSERT INTO group_jobs (group_id, position, job_id) VALUES (:group_id, :position, :job_id);

-- name: select_group
SELECT * FROM groups WHERE id = :id AND (:user_id IS NULL OR user_id = :user_id);

-- name: list_user_groups
SELECT * FROM groups
WHERE user_id = :user_id
  AND id < :before_id
  AND (:project_id IS NULL OR project_id = :project_id)
ORDER BY id DESC
LIMIT :limit;

-- name: group_counts
-- Per group of :ids (a JSON array) and status: how many jobs, and the sum of their progress.
SELECT gj.group_id, j.status, count(*) AS count, sum(j.progress) AS progress
FROM group_jobs AS gj JOIN jobs AS j ON j.id = gj.job_id
WHERE gj.group_id IN (SELECT value FROM json_each(:ids))
GROUP BY gj.group_id, j.status;

-- name: list_group_jobs
SELECT j.* FROM group_jobs AS gj JOIN jobs AS j ON j.id = gj.job_id
WHERE gj.group_id = :group_id AND gj.position > :after
ORDER BY gj.position
LIMIT :limit;

-- name: group_job_ids
SELECT j.id FROM group_jobs AS gj JOIN jobs AS j ON j.id = gj.job_id
WHERE gj.group_id = :group_id AND j.status IN (SELECT value FROM json_each(:statuses))
ORDER BY gj.position;

-- name: set_group_cancelled
UPDATE groups SET cancelled_at = :cancelled_at WHERE id = :id;

-- name: groups_to_finish
-- twin of: jobdesk.groups.is_finished
-- Groups whose fan-in job is due: not cancelled, and none of their jobs active (pending or
-- processing, jobdesk.models.JobStatus.is_active).
SELECT * FROM groups AS g
WHERE g.on_complete IS NOT NULL AND g.on_complete_job_id IS NULL AND g.cancelled_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM group_jobs AS gj JOIN jobs AS j ON j.id = gj.job_id
      WHERE gj.group_id = g.id AND j.status IN ('pending', 'processing')
  )
ORDER BY g.id
LIMIT :limit;

-- name: set_fan_in
UPDATE groups SET on_complete_job_id = :job_id WHERE id = :id;

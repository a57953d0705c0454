-- Retention (jobdesk.retention): the lease that lets one process at a time run a pass,
-- and the expired jobs a pass deletes, batch by batch.

-- name: take_retention_lease
-- Taken when free, expired, or already ours (a pass renews it batch by batch).
UPDATE retention_runs SET holder = :holder, held_until = :until
WHERE name = 'retention' AND (holder IS NULL OR holder = :holder OR held_until <= :now);

-- name: release_retention_lease
UPDATE retention_runs SET holder = NULL, held_until = NULL
WHERE name = 'retention' AND holder = :holder;

-- name: record_retention_run
UPDATE retention_runs SET
    holder = NULL, held_until = NULL,
    last_started_at = :started_at, last_finished_at = :finished_at,
    last_deleted = :deleted, last_batches = :batches, last_more = :more
WHERE name = 'retention' AND holder = :holder;

-- name: select_retention_state
SELECT * FROM retention_runs WHERE name = 'retention';

-- name: expired_jobs
-- twin of: jobdesk.retention.is_expired
-- The policy arrives as jobdesk.retention.RetentionPolicy.cutoffs' rows, a JSON array of
-- {status, type or null for every other type, before or null for "keep forever"}: a
-- job's own type's row wins over its status's row, and NULL compares as false, so
-- kept-forever jobs stay. :latest, the latest cutoff, bounds the walk of jobs_finished
-- from above; :after (the newest finished_at the pass's last batch deleted) from below,
-- so no batch walks again over the jobs the policy keeps.
SELECT j.id, j.status, j.finished_at FROM jobs AS j
WHERE j.status IN ('completed', 'failed', 'cancelled') AND j.finished_at < :latest
  AND (:after IS NULL OR j.finished_at >= :after)
  AND j.finished_at < (
      SELECT json_extract(r.value, '$.before') FROM json_each(:rules) AS r
      WHERE json_extract(r.value, '$.status') = j.status
        AND (json_extract(r.value, '$.type') = j.type OR json_extract(r.value, '$.type') IS NULL)
      ORDER BY json_extract(r.value, '$.type') IS NULL
      LIMIT 1
  )
ORDER BY j.finished_at
LIMIT :limit;

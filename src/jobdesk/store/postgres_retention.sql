-- Retention (jobdesk.retention): the lease that lets one process at a time run a pass,
-- and the expired jobs a pass deletes, batch by batch.

-- name: take_retention_lease
-- Taken when free, expired, or already ours (a pass renews it batch by batch).
UPDATE jobdesk.retention_runs SET
    holder = %(holder)s,
    held_until = coalesce(%(now)s::timestamptz, now()) + make_interval(secs => %(seconds)s)
WHERE name = 'retention'
  AND (holder IS NULL OR holder = %(holder)s
       OR held_until <= coalesce(%(now)s::timestamptz, now()))
RETURNING held_until;

-- name: release_retention_lease
UPDATE jobdesk.retention_runs SET holder = NULL, held_until = NULL
WHERE name = 'retention' AND holder = %(holder)s;

-- name: record_retention_run
UPDATE jobdesk.retention_runs SET
    holder = NULL, held_until = NULL,
    last_started_at = %(started_at)s, last_finished_at = %(finished_at)s,
    last_deleted = %(deleted)s::jsonb, last_batches = %(batches)s, last_more = %(more)s
WHERE name = 'retention' AND holder = %(holder)s;

-- name: select_retention_state
SELECT * FROM jobdesk.retention_runs WHERE name = 'retention';

-- name: delete_expired
-- twin of: jobdesk.retention.is_expired
-- The policy arrives as jobdesk.retention.RetentionPolicy.cutoffs' rows (status, type or
-- NULL for every other type, before or NULL for "keep forever"): a job's own type's row
-- wins over its status's row, and NULL compares as false, so kept-forever jobs stay.
-- %(latest)s, the latest cutoff, bounds the walk of the jobs_finished index from above;
-- %(after)s (the newest finished_at the pass's last batch deleted) from below: a job the
-- pass walked past stays unexpired for the rest of the pass (its cutoffs are fixed), so
-- no batch walks again over the jobs the policy keeps. The oldest go first, SKIP LOCKED:
-- a job another transaction holds waits for the next pass.
WITH rules AS MATERIALIZED (
    SELECT * FROM unnest(%(statuses)s::text[], %(types)s::text[], %(befores)s::timestamptz[])
        AS r (status, type, before)
), doomed AS MATERIALIZED (
    SELECT j.id FROM jobdesk.jobs AS j
    WHERE j.status IN ('completed', 'failed', 'cancelled') AND j.finished_at < %(latest)s
      AND j.finished_at >= coalesce(%(after)s::timestamptz, '-infinity')
      AND j.finished_at < (
          SELECT r.before FROM rules AS r
          WHERE r.status = j.status AND (r.type = j.type OR r.type IS NULL)
          ORDER BY r.type IS NULL
          LIMIT 1
      )
    ORDER BY j.finished_at
    LIMIT %(limit)s
    FOR UPDATE OF j SKIP LOCKED
), events AS (
    DELETE FROM jobdesk.job_events AS e USING doomed WHERE e.job_id = doomed.id
)
DELETE FROM jobdesk.jobs AS j USING doomed WHERE j.id = doomed.id
RETURNING j.status, j.finished_at;

-- name: count_expired
-- twin of: jobdesk.retention.is_expired
-- delete_expired's choice, counted by status (a dry run).
WITH rules AS MATERIALIZED (
    SELECT * FROM unnest(%(statuses)s::text[], %(types)s::text[], %(befores)s::timestamptz[])
        AS r (status, type, before)
)
SELECT j.status, count(*) AS count FROM jobdesk.jobs AS j
WHERE j.status IN ('completed', 'failed', 'cancelled') AND j.finished_at < %(latest)s
  AND j.finished_at < (
      SELECT r.before FROM rules AS r
      WHERE r.status = j.status AND (r.type = j.type OR r.type IS NULL)
      ORDER BY r.type IS NULL
      LIMIT 1
  )
GROUP BY j.status;

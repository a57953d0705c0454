-- jobdesk schema, version 5 (PostgreSQL): claims walk the queue index, whatever the statistics.
--
-- jobdesk.lock_ready locks up to `wanted` due pending jobs in claim order, skipping those
-- other claimers hold, and returns their ids. The only good plan is to walk jobs_queue
-- (priority DESC, id) in order and stop after `wanted` rows. A planner that believes few
-- jobs are pending (statistics taken while the queue was empty, or none yet: a table
-- filled a moment ago) instead reads every pending job and sorts them: measured, 1.4 ms
-- per claim with 2,000 pending jobs, growing with the backlog, exactly when throughput
-- matters. The function's settings rule those plans out; its plan is cached per session.
CREATE FUNCTION jobdesk.lock_ready(wanted_types text[], wanted integer, at timestamptz)
RETURNS SETOF text LANGUAGE plpgsql
ROWS 10  -- a batch, not the default 1000: the caller then updates the rows by primary key
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    RETURN QUERY
        SELECT j.id FROM jobdesk.jobs AS j
        WHERE j.status = 'pending'
          AND j.run_at <= at
          AND (wanted_types IS NULL OR j.type = ANY(wanted_types))
        ORDER BY j.priority DESC, j.id
        LIMIT wanted
        FOR UPDATE SKIP LOCKED;
END
$$;

-- jobdesk schema, version 12 (PostgreSQL): retention (jobdesk.retention), and autovacuum
-- settings for the tables that churn.
--
-- jobdesk.retention_runs holds the deployment's one retention lease (holder, held_until)
-- and what its last pass did. A pass is many short transactions (one per batch), so
-- that no transaction holds back vacuum's horizon for long; a session advisory lock
-- would pin one pooled connection for the whole pass and vanish silently with it, while
-- a lease row with an expiry is the same on both stores and frees itself when its
-- holder dies.
CREATE TABLE jobdesk.retention_runs (
    name            text PRIMARY KEY,
    holder          text,
    held_until      timestamptz,
    last_started_at timestamptz,
    last_finished_at timestamptz,
    -- {"completed": n, "failed": n, "cancelled": n}
    last_deleted    jsonb,
    last_batches    integer,
    last_more       boolean
);
INSERT INTO jobdesk.retention_runs (name) VALUES ('retention');

-- Autovacuum. The defaults (vacuum at 20% dead rows, analyze at 10% changed) suit tables
-- of steady size; jobs and job_events are queues: every job is updated several times
-- (claim, progress, complete) and retention deletes the old ones in bulk. At 10 million
-- rows the default waits for 2 million dead rows before vacuuming, and the dead index
-- entries of the partial queue indexes are what claims walk over. A fixed threshold
-- (about 10,000 rows) plus 1% keeps the dead rows bounded whatever the history size;
-- the cost limit lets one vacuum of the hot table finish between bursts. job_events is
-- insert-mostly, so its insert threshold matters too (freezing and the visibility map
-- for index-only reads).
ALTER TABLE jobdesk.jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);
ALTER TABLE jobdesk.job_events SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);
-- users: one row per user, updated by every create and claim (its waiting count, its
-- virtual clock): small, but hot; vacuum it often so its pages stay few.
ALTER TABLE jobdesk.users SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000
);

-- jobdesk schema, version 4 (SQLite): admission and concurrency apart, a fair claim
-- (PostgreSQL's version 7, without its functions: SQLite runs jobdesk.scheduling itself).
--
-- Per user: max_running (jobs processing at once; further jobs wait), max_waiting
-- (pending jobs a user may hold), max_daily, weight; and the scheduler's state: waiting
-- (the user's pending jobs, kept as a count so that the users with work can be found
-- through an index without reading the jobs) and vtime (the user's virtual clock,
-- jobdesk.scheduling). Stored max_active overrides become max_running.
-- Per type: type_limits holds a pool (max_running across every worker) and a rate,
-- spread evenly (next_start_at, ISO text: when the next start may come).

ALTER TABLE users ADD COLUMN max_running INTEGER;
ALTER TABLE users ADD COLUMN max_waiting INTEGER;
ALTER TABLE users ADD COLUMN weight REAL;
ALTER TABLE users ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0 CHECK (waiting >= 0);
ALTER TABLE users ADD COLUMN vtime REAL NOT NULL DEFAULT 0;

UPDATE users SET max_running = max_active WHERE max_active IS NOT NULL;
ALTER TABLE users DROP COLUMN max_active;

-- Creates have always made the user's row; a file written by hand may lack one.
INSERT INTO users (user_id)
SELECT DISTINCT user_id FROM jobs WHERE status = 'pending'
ON CONFLICT (user_id) DO NOTHING;
-- twin of: jobdesk.store.Store.insert_job (waiting: the user's pending jobs)
UPDATE users SET waiting = (
    SELECT count(*) FROM jobs WHERE jobs.user_id = users.user_id AND jobs.status = 'pending'
);

-- The queue of queues: the users with work, by their clocks (jobdesk.scheduling.plan).
CREATE INDEX users_waiting ON users (vtime, user_id) WHERE waiting > 0;
-- One user's queue, in their own order (jobdesk.scheduling.user_order_key).
CREATE INDEX jobs_user_queue ON jobs (user_id, priority DESC, id) WHERE status = 'pending';
-- A type's jobs processing now (its pool), counted at a claim.
CREATE INDEX jobs_running_by_type ON jobs (type) WHERE status = 'processing';

CREATE TABLE type_limits (
    type          TEXT PRIMARY KEY,
    max_running   INTEGER CHECK (max_running >= 0),
    rate_count    INTEGER CHECK (rate_count > 0),
    rate_period   REAL CHECK (rate_period > 0),
    next_start_at TEXT,
    CHECK ((rate_count IS NULL) = (rate_period IS NULL))
);

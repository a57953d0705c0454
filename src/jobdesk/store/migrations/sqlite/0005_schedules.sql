-- jobdesk schema, version 5 (SQLite): schedules (jobdesk.schedules) and trace context.
--
-- One row per schedule: its cron expression, time zone and missed-tick policy, the job it
-- makes, and the time of its next tick. A runner fires the due rows under the write lock
-- (BEGIN IMMEDIATE) and writes each row's next tick in the transaction that creates the
-- tick's job, so a tick makes one job however many processes run schedules. The job is
-- keyed by (user_id, idempotency_key) = (owner, 'schedule:<name>@<tick>'), the jobs'
-- unique index: a second job for one tick cannot be stored.

CREATE TABLE schedules (
    name         TEXT PRIMARY KEY,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    missed       TEXT NOT NULL CHECK (missed IN ('once', 'skip')),
    type         TEXT NOT NULL,
    input        TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    project_id   TEXT,
    paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    next_run_at  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    last_tick_at TEXT,
    last_job_id  TEXT,
    last_error   TEXT
);

-- The runners' question: which schedules are due, earliest tick first.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE paused = 0;

-- The W3C traceparent of the trace that created a job (jobdesk.tracing), when tracing is on.
ALTER TABLE jobs ADD COLUMN traceparent TEXT;

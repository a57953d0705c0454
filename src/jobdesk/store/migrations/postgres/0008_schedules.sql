-- jobdesk schema, version 8 (PostgreSQL): schedules (jobdesk.schedules) and trace context.
--
-- One row per schedule: its cron expression, time zone and missed-tick policy, the job it
-- makes, and the time of its next tick. Runners lock the due rows FOR UPDATE SKIP LOCKED
-- and write each row's next tick in the transaction that creates the tick's job, so a
-- tick makes one job however many processes run schedules. The job is keyed by
-- (user_id, idempotency_key) = (owner, 'schedule:<name>@<tick>'), the jobs' unique index:
-- a second job for one tick cannot be stored.

CREATE TABLE jobdesk.schedules (
    name         text PRIMARY KEY,
    cron         text NOT NULL,
    timezone     text NOT NULL,
    missed       text NOT NULL CHECK (missed IN ('once', 'skip')),
    type         text NOT NULL,
    input        jsonb NOT NULL,
    user_id      text NOT NULL,
    project_id   text,
    paused       boolean NOT NULL DEFAULT false,
    next_run_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    last_tick_at timestamptz,
    last_job_id  text,
    last_error   text
);

-- The runners' question: which schedules are due, earliest tick first.
CREATE INDEX schedules_due ON jobdesk.schedules (next_run_at) WHERE NOT paused;

-- The W3C traceparent of the trace that created a job (jobdesk.tracing), when tracing is on.
-- Nullable without a default: adding it rewrites nothing.
ALTER TABLE jobdesk.jobs ADD COLUMN traceparent text;

-- jobdesk schema, version 1 (PostgreSQL). Everything lives in the "jobdesk" schema so it
-- can share a database with the host application. Ids compare bytewise (COLLATE "C"),
-- as they do in Python, so "newest first" is the same order everywhere.

CREATE TABLE jobdesk.jobs (
    id               text COLLATE "C" PRIMARY KEY,
    user_id          text NOT NULL,
    project_id       text,
    type             text NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    input            jsonb NOT NULL,
    result           jsonb,
    error            jsonb,
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    progress_message text,
    priority         integer NOT NULL DEFAULT 0,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    attempt_offset   integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    run_at           timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL,
    worker_id        text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    idempotency_key  text
);

-- get_user_jobs without a status filter: newest first within one user.
CREATE INDEX jobs_by_user ON jobdesk.jobs (user_id, id);
-- get_user_jobs by status, and the active-job count at create time.
CREATE INDEX jobs_by_user_status ON jobdesk.jobs (user_id, status, id);
-- The queue: claim order among pending jobs only (small: finished jobs leave it).
CREATE INDEX jobs_queue ON jobdesk.jobs (priority DESC, id) WHERE status = 'pending';
-- The reaper: running jobs by lease end.
CREATE INDEX jobs_leases ON jobdesk.jobs (lease_expires_at) WHERE status = 'processing';
-- Pruning finished jobs by age.
CREATE INDEX jobs_finished ON jobdesk.jobs (finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE UNIQUE INDEX jobs_idempotency ON jobdesk.jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE jobdesk.job_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id    text COLLATE "C" NOT NULL,
    at        timestamptz NOT NULL,
    status    text NOT NULL,
    attempt   integer NOT NULL,
    worker_id text,
    error     jsonb
);
CREATE INDEX job_events_by_job ON jobdesk.job_events (job_id, id);

-- One row per user who ever created a job: limit overrides and the daily count. Creating
-- a job updates this row first, and that row lock serialises one user's creates and
-- retries across every process: counting rows alone under READ COMMITTED would race.
CREATE TABLE jobdesk.users (
    user_id        text PRIMARY KEY,
    max_active     integer,
    max_daily      integer,
    usage_day      date,
    created_on_day integer NOT NULL DEFAULT 0
);

CREATE TABLE jobdesk.tokens (
    key_id      text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('worker', 'user')),
    subject     text NOT NULL,
    secret_hash bytea NOT NULL,
    types       text[],
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX tokens_live_worker_name ON jobdesk.tokens (subject)
    WHERE kind = 'worker' AND revoked_at IS NULL;
CREATE INDEX tokens_by_subject ON jobdesk.tokens (kind, subject);

CREATE TABLE jobdesk.meta (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);

-- Every committed insert or update of a job is announced on the jobdesk_changes channel
-- (NOTIFY is delivered at commit, and not at all on rollback). Listeners use it to wake
-- workers and to stream progress; it is a speed-up, never the guarantee.
CREATE FUNCTION jobdesk.announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobdesk_changes', json_build_object(
        'id', NEW.id, 'user_id', NEW.user_id, 'type', NEW.type, 'status', NEW.status,
        'progress', NEW.progress, 'message', left(NEW.progress_message, 1000),
        'attempt', NEW.attempt, 'at', NEW.updated_at)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_announce_change AFTER INSERT OR UPDATE ON jobdesk.jobs
    FOR EACH ROW EXECUTE FUNCTION jobdesk.announce_change();

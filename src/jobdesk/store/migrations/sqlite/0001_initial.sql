-- jobdesk schema, version 1 (SQLite).
-- Times are ISO 8601 UTC text with microseconds ("2026-11-27T22:02:31.123456+00:00"),
-- which sort as they compare.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    project_id       TEXT,
    type             TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    input            TEXT NOT NULL,
    result           TEXT,
    error            TEXT,
    progress         REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    progress_message TEXT,
    priority         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    attempt_offset   INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    run_at           TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    updated_at       TEXT NOT NULL,
    worker_id        TEXT,
    lease_expires_at TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    idempotency_key  TEXT
);

-- get_user_jobs without a status filter: newest first within one user.
CREATE INDEX jobs_by_user ON jobs (user_id, id);
-- get_user_jobs by status, and the active-job count at create time.
CREATE INDEX jobs_by_user_status ON jobs (user_id, status, id);
-- The queue: claim order among pending jobs only.
CREATE INDEX jobs_queue ON jobs (priority DESC, id) WHERE status = 'pending';
-- The reaper: leases that may have run out.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'processing';
-- Pruning finished jobs by age.
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE UNIQUE INDEX jobs_idempotency ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE job_events (
    id        INTEGER PRIMARY KEY,
    job_id    TEXT NOT NULL,
    at        TEXT NOT NULL,
    status    TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    worker_id TEXT,
    error     TEXT
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);

-- One row per user who ever created a job: limit overrides and the daily count.
-- Its row lock (a write under BEGIN IMMEDIATE here) serialises a user's creates.
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    max_active     INTEGER,
    max_daily      INTEGER,
    usage_day      TEXT NOT NULL DEFAULT '',
    created_on_day INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE tokens (
    key_id      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('worker', 'user')),
    subject     TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    types       TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE UNIQUE INDEX tokens_live_worker_name ON tokens (subject)
    WHERE kind = 'worker' AND revoked_at IS NULL;
CREATE INDEX tokens_by_subject ON tokens (kind, subject);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
INSERT INTO meta (key, value) VALUES ('secret', randomblob(32));

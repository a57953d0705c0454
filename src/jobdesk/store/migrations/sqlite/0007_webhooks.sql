-- jobdesk schema, version 7 (SQLite): webhooks and their transactional outbox
-- (PostgreSQL's version 10).
--
-- A webhook is a user's or a project's endpoint. Each status change of a job appends a
-- row to job_events in the transaction that makes it; while at least one webhook exists,
-- a trigger (job_events_to_webhooks, made and dropped by SQLiteStore.set_webhook and
-- remove_webhook: with no webhook there is no trigger, and no cost) copies that entry to
-- webhook_outbox for each webhook that asked for it, in the same transaction. Senders
-- (jobdesk serve, jobdesk webhooks deliver) read the outbox.

CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    user_id       TEXT,
    project_id    TEXT,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    -- the job statuses it receives, a JSON array
    statuses      TEXT NOT NULL,
    allow_http    INTEGER NOT NULL DEFAULT 0,
    allow_private INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    CHECK ((user_id IS NULL) <> (project_id IS NULL))
);
CREATE UNIQUE INDEX webhooks_of_user ON webhooks (user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX webhooks_of_project ON webhooks (project_id) WHERE project_id IS NOT NULL;

CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    at              TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    tries           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_status     INTEGER,
    last_response   TEXT,
    delivered_at    TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_outbox_of_job ON webhook_outbox (webhook_id, job_id, id)
    WHERE state = 'pending';
CREATE INDEX webhook_outbox_by_state ON webhook_outbox (state, id);

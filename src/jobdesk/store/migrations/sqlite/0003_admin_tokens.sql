-- jobdesk schema, version 3 (SQLite): admin tokens (jda_..., the operator's dashboard) in
-- the tokens table, and the users busiest today for the dashboard's usage table.
-- SQLite cannot change a CHECK in place: build the new table, copy, swap, re-index.

CREATE TABLE tokens_new (
    key_id      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('worker', 'user', 'admin')),
    subject     TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    types       TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
INSERT INTO tokens_new (key_id, kind, subject, secret_hash, types, created_at, expires_at,
                        revoked_at)
SELECT key_id, kind, subject, secret_hash, types, created_at, expires_at, revoked_at
FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE UNIQUE INDEX tokens_live_worker_name ON tokens (subject)
    WHERE kind = 'worker' AND revoked_at IS NULL;
CREATE INDEX tokens_by_subject ON tokens (kind, subject);

-- Like a worker token's, an admin token's name is unique among the live ones: the
-- index, not a check before the insert, is what holds when two are created at once.
CREATE UNIQUE INDEX tokens_live_admin_name ON tokens (subject)
    WHERE kind = 'admin' AND revoked_at IS NULL;

-- The admin page's "top users by jobs created today": one index range for today.
CREATE INDEX users_by_day ON users (usage_day, created_on_day);

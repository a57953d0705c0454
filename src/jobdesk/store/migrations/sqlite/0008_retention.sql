-- jobdesk schema, version 8 (SQLite): retention (PostgreSQL's version 12).
--
-- retention_runs holds the deployment's one retention lease (holder, held_until) and
-- what its last pass did. SQLite has one writer at a time already, but a pass is many
-- short transactions: the lease keeps two processes from interleaving passes.
CREATE TABLE retention_runs (
    name             TEXT PRIMARY KEY,
    holder           TEXT,
    held_until       TEXT,
    last_started_at  TEXT,
    last_finished_at TEXT,
    -- {"completed": n, "failed": n, "cancelled": n}
    last_deleted     TEXT,
    last_batches     INTEGER,
    last_more        INTEGER
);
INSERT INTO retention_runs (name) VALUES ('retention');

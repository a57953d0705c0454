-- jobdesk schema, version 6 (SQLite): groups (PostgreSQL's version 9).
--
-- A group is a user's jobs made together (jobdesk.groups). Its status and progress are
-- not stored: jobdesk.groups.summarize derives them from its jobs when it is read. The
-- jobs table is untouched: membership is its own table, so nothing on the claim or
-- complete path reads or writes groups.

CREATE TABLE groups (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL,
    project_id         TEXT,
    name               TEXT,
    -- the fan-in job to make when every job has finished: {"type": ..., "input": ...}
    on_complete        TEXT,
    on_complete_job_id TEXT,
    cancelled_at       TEXT,
    created_at         TEXT NOT NULL
);
-- A user's groups, newest first (keyset pagination by id, as for jobs).
CREATE INDEX groups_by_user ON groups (user_id, id);
-- Groups whose fan-in job is still to be made.
CREATE INDEX groups_fan_in_due ON groups (id)
    WHERE on_complete IS NOT NULL AND on_complete_job_id IS NULL;

CREATE TABLE group_jobs (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    job_id   TEXT NOT NULL,
    PRIMARY KEY (group_id, position)
);
CREATE INDEX group_jobs_by_job ON group_jobs (job_id);

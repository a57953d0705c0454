-- jobdesk schema, version 2 (PostgreSQL): a user's jobs by last change, for event streams
-- that resume after a disconnection (get_user_jobs_changed_since).

CREATE INDEX jobs_by_user_update ON jobdesk.jobs (user_id, updated_at, id);

-- jobdesk schema, version 3 (PostgreSQL): admin tokens (jda_..., the operator's dashboard)
-- in the tokens table, and the users busiest today for the dashboard's usage table.

ALTER TABLE jobdesk.tokens DROP CONSTRAINT tokens_kind_check;
ALTER TABLE jobdesk.tokens ADD CONSTRAINT tokens_kind_check
    CHECK (kind IN ('worker', 'user', 'admin'));

-- Like a worker token's, an admin token's name is unique among the live ones: the
-- index, not a check before the insert, is what holds when two are created at once.
CREATE UNIQUE INDEX tokens_live_admin_name ON jobdesk.tokens (subject)
    WHERE kind = 'admin' AND revoked_at IS NULL;

-- The admin page's "top users by jobs created today": one index range for today.
CREATE INDEX users_by_day ON jobdesk.users (usage_day, created_on_day);

-- jobdesk schema, version 9 (SQLite): group.* webhook events (PostgreSQL's version 13).
--
-- A webhook may ask for its groups' transitions (group.running, group.completed, ...)
-- as well as its jobs' (webhooks.group_statuses, a JSON array). A group's status is
-- derived from its jobs (jobdesk.groups.summarize), so it changes only when one of its
-- jobs changes, or when cancel_group / retry_group set or clear its cancelled mark: while
-- a webhook asks for group events, two triggers (made and dropped by
-- SQLiteStore.set_webhook and remove_webhook, see sqlite_webhooks.sql) judge the group
-- again in that very transaction and, when its status moved, append a group row to
-- webhook_outbox (subject = 'group', job_id = the group's id).
--
-- To judge a group in O(1) per job change, each group a group webhook covers keeps a
-- tally of its jobs per status (groups.tally_*) and each member the status it was
-- counted in (group_jobs.tallied_status). The tally is NULL until first needed (then
-- counted once from the jobs as they stand); set_webhook and remove_webhook clear every
-- tally, so one is never used after a time its triggers were off.

ALTER TABLE webhooks ADD COLUMN group_statuses TEXT NOT NULL DEFAULT '[]';

ALTER TABLE webhook_outbox ADD COLUMN subject TEXT NOT NULL DEFAULT 'job'
    CHECK (subject IN ('job', 'group'));

ALTER TABLE groups ADD COLUMN announced_status TEXT;
ALTER TABLE groups ADD COLUMN tally_pending INTEGER;
ALTER TABLE groups ADD COLUMN tally_processing INTEGER;
ALTER TABLE groups ADD COLUMN tally_completed INTEGER;
ALTER TABLE groups ADD COLUMN tally_failed INTEGER;
ALTER TABLE groups ADD COLUMN tally_cancelled INTEGER;

ALTER TABLE group_jobs ADD COLUMN tallied_status TEXT;

-- twin of: jobdesk.groups.summarize
-- Each counted group's status from its tally and whether cancel_group was the last word
-- (the status only; the progress is not announced).
CREATE VIEW group_tally_status AS
SELECT g.id, g.user_id, g.project_id, g.announced_status,
    CASE
        WHEN g.tally_pending + g.tally_processing = 0 THEN CASE
            WHEN g.tally_completed = g.tally_completed + g.tally_failed + g.tally_cancelled
                 AND g.tally_completed > 0 THEN 'completed'
            WHEN g.cancelled_at IS NOT NULL
                 OR g.tally_cancelled = g.tally_completed + g.tally_failed + g.tally_cancelled
                THEN 'cancelled'
            WHEN g.tally_completed = 0 THEN 'failed'
            ELSE 'partially_failed'
        END
        WHEN g.tally_pending = g.tally_pending + g.tally_processing + g.tally_completed
             + g.tally_failed + g.tally_cancelled THEN 'pending'
        ELSE 'running'
    END AS status
FROM groups AS g
WHERE g.tally_pending IS NOT NULL;

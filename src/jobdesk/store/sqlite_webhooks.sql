-- jobdesk's webhook queries for SQLite (schema version 10), each by name.

-- name: create_outbox_trigger
-- While a webhook exists: each history entry of a job goes to the outbox of every webhook
-- of its user or project that asked for its status, in the transition's transaction.
CREATE TRIGGER IF NOT EXISTS job_events_to_webhooks AFTER INSERT ON job_events
BEGIN
    INSERT INTO webhook_outbox (webhook_id, job_id, status, attempt, at, next_attempt_at)
    SELECT w.id, NEW.job_id, NEW.status, NEW.attempt, NEW.at, NEW.at
    FROM jobs AS j JOIN webhooks AS w ON w.user_id = j.user_id OR w.project_id = j.project_id
    WHERE j.id = NEW.job_id AND NEW.status IN (SELECT value FROM json_each(w.statuses));
END;

-- name: drop_outbox_trigger
DROP TRIGGER IF EXISTS job_events_to_webhooks;

-- name: create_group_outbox_trigger
-- While a webhook asks for group events (migration 10): a history entry of a job in a
-- group that such a webhook covers judges the group again (group_tally_status) and, when
-- its status moved, appends a group delivery for each webhook that asked for it. A new
-- group's first entries (pending, nothing counted or announced yet) cannot move it.
CREATE TRIGGER IF NOT EXISTS job_events_to_group_webhooks AFTER INSERT ON job_events
WHEN EXISTS (
    SELECT 1 FROM group_jobs AS gj
    JOIN groups AS g ON g.id = gj.group_id
    JOIN webhooks AS w ON w.user_id = g.user_id OR w.project_id = g.project_id
    WHERE gj.job_id = NEW.job_id AND w.group_statuses <> '[]'
      AND (NEW.status <> 'pending' OR g.tally_pending IS NOT NULL
           OR g.announced_status IS NOT NULL)
)
BEGIN
    -- A group without a tally: counted once from its jobs as they stand.
    UPDATE group_jobs SET tallied_status = (SELECT j.status FROM jobs AS j WHERE j.id = group_jobs.job_id)
    WHERE group_id IN (
        SELECT g.id FROM groups AS g JOIN group_jobs AS gj ON gj.group_id = g.id
        WHERE gj.job_id = NEW.job_id AND g.tally_pending IS NULL
    );
    UPDATE groups SET
        tally_pending = (SELECT count(*) FROM group_jobs AS gj
                         WHERE gj.group_id = groups.id AND gj.tallied_status = 'pending'),
        tally_processing = (SELECT count(*) FROM group_jobs AS gj
                            WHERE gj.group_id = groups.id AND gj.tallied_status = 'processing'),
        tally_completed = (SELECT count(*) FROM group_jobs AS gj
                           WHERE gj.group_id = groups.id AND gj.tallied_status = 'completed'),
        tally_failed = (SELECT count(*) FROM group_jobs AS gj
                        WHERE gj.group_id = groups.id AND gj.tallied_status = 'failed'),
        tally_cancelled = (SELECT count(*) FROM group_jobs AS gj
                           WHERE gj.group_id = groups.id AND gj.tallied_status = 'cancelled')
    WHERE tally_pending IS NULL
      AND id IN (SELECT group_id FROM group_jobs WHERE job_id = NEW.job_id);
    -- This job's move, from the status it was counted in.
    UPDATE groups SET
        tally_pending = tally_pending + (NEW.status = 'pending') - (
            SELECT gj.tallied_status IS 'pending' FROM group_jobs AS gj
            WHERE gj.group_id = groups.id AND gj.job_id = NEW.job_id),
        tally_processing = tally_processing + (NEW.status = 'processing') - (
            SELECT gj.tallied_status IS 'processing' FROM group_jobs AS gj
            WHERE gj.group_id = groups.id AND gj.job_id = NEW.job_id),
        tally_completed = tally_completed + (NEW.status = 'completed') - (
            SELECT gj.tallied_status IS 'completed' FROM group_jobs AS gj
            WHERE gj.group_id = groups.id AND gj.job_id = NEW.job_id),
        tally_failed = tally_failed + (NEW.status = 'failed') - (
            SELECT gj.tallied_status IS 'failed' FROM group_jobs AS gj
            WHERE gj.group_id = groups.id AND gj.job_id = NEW.job_id),
        tally_cancelled = tally_cancelled + (NEW.status = 'cancelled') - (
            SELECT gj.tallied_status IS 'cancelled' FROM group_jobs AS gj
            WHERE gj.group_id = groups.id AND gj.job_id = NEW.job_id)
    WHERE id IN (
        SELECT group_id FROM group_jobs
        WHERE job_id = NEW.job_id AND tallied_status IS NOT NEW.status
    );
    UPDATE group_jobs SET tallied_status = NEW.status WHERE job_id = NEW.job_id;
    INSERT INTO webhook_outbox (
        webhook_id, job_id, subject, status, attempt, at, next_attempt_at
    )
    SELECT w.id, s.id, 'group', s.status, 0, NEW.at, NEW.at
    FROM group_tally_status AS s
    JOIN webhooks AS w ON w.user_id = s.user_id OR w.project_id = s.project_id
    WHERE s.id IN (SELECT group_id FROM group_jobs WHERE job_id = NEW.job_id)
      AND s.status IS NOT coalesce(s.announced_status, 'pending')
      AND s.status IN (SELECT value FROM json_each(w.group_statuses))
    ORDER BY w.id;
    UPDATE groups SET
        announced_status = (SELECT s.status FROM group_tally_status AS s WHERE s.id = groups.id)
    WHERE id IN (SELECT group_id FROM group_jobs WHERE job_id = NEW.job_id)
      AND tally_pending IS NOT NULL;
END;

-- name: create_group_cancel_trigger
-- While a webhook asks for group events: cancel_group / retry_group setting or clearing a
-- group's cancelled mark judges it again (stamped with the cancel's time; when cleared,
-- the last cancel's, due at once).
CREATE TRIGGER IF NOT EXISTS group_cancel_to_webhooks AFTER UPDATE OF cancelled_at ON groups
WHEN NEW.cancelled_at IS NOT OLD.cancelled_at AND EXISTS (
    SELECT 1 FROM webhooks AS w
    WHERE (w.user_id = NEW.user_id OR w.project_id = NEW.project_id)
      AND w.group_statuses <> '[]'
)
BEGIN
    UPDATE group_jobs SET tallied_status = (SELECT j.status FROM jobs AS j WHERE j.id = group_jobs.job_id)
    WHERE group_id = NEW.id AND NEW.tally_pending IS NULL;
    UPDATE groups SET
        tally_pending = (SELECT count(*) FROM group_jobs AS gj
                         WHERE gj.group_id = groups.id AND gj.tallied_status = 'pending'),
        tally_processing = (SELECT count(*) FROM group_jobs AS gj
                            WHERE gj.group_id = groups.id AND gj.tallied_status = 'processing'),
        tally_completed = (SELECT count(*) FROM group_jobs AS gj
                           WHERE gj.group_id = groups.id AND gj.tallied_status = 'completed'),
        tally_failed = (SELECT count(*) FROM group_jobs AS gj
                        WHERE gj.group_id = groups.id AND gj.tallied_status = 'failed'),
        tally_cancelled = (SELECT count(*) FROM group_jobs AS gj
                           WHERE gj.group_id = groups.id AND gj.tallied_status = 'cancelled')
    WHERE id = NEW.id AND tally_pending IS NULL;
    INSERT INTO webhook_outbox (
        webhook_id, job_id, subject, status, attempt, at, next_attempt_at
    )
    SELECT w.id, s.id, 'group', s.status, 0, coalesce(NEW.cancelled_at, OLD.cancelled_at),
           coalesce(NEW.cancelled_at, OLD.cancelled_at)
    FROM group_tally_status AS s
    JOIN webhooks AS w ON w.user_id = s.user_id OR w.project_id = s.project_id
    WHERE s.id = NEW.id AND s.status IS NOT coalesce(s.announced_status, 'pending')
      AND s.status IN (SELECT value FROM json_each(w.group_statuses))
    ORDER BY w.id;
    UPDATE groups SET
        announced_status = (SELECT s.status FROM group_tally_status AS s WHERE s.id = groups.id)
    WHERE id = NEW.id;
END;

-- name: drop_group_outbox_trigger
DROP TRIGGER IF EXISTS job_events_to_group_webhooks;

-- name: drop_group_cancel_trigger
DROP TRIGGER IF EXISTS group_cancel_to_webhooks;

-- name: forget_group_tallies
-- Every group is counted again from its jobs the next time it is judged: the webhooks
-- changed, so a tally may be from before a time its triggers were off.
UPDATE groups SET
    tally_pending = NULL, tally_processing = NULL, tally_completed = NULL,
    tally_failed = NULL, tally_cancelled = NULL
WHERE tally_pending IS NOT NULL;

-- name: count_group_webhooks
SELECT count(*) FROM webhooks WHERE group_statuses <> '[]';

-- name: delete_webhook_of_owner
DELETE FROM webhooks
WHERE (:user_id IS NOT NULL AND user_id = :user_id)
   OR (:project_id IS NOT NULL AND project_id = :project_id);

-- name: insert_webhook
INSERT INTO webhooks (
    id, user_id, project_id, url, secret, statuses, group_statuses, allow_http,
    allow_private, created_at
) VALUES (
    :id, :user_id, :project_id, :url, :secret, :statuses, :group_statuses, :allow_http,
    :allow_private, :created_at
);

-- name: delete_webhook
DELETE FROM webhooks WHERE id = :id;

-- name: count_job_webhooks
-- Webhooks that ask for a job event: the job trigger exists only while there is one.
SELECT count(*) FROM webhooks WHERE statuses <> '[]';

-- name: list_webhooks
SELECT * FROM webhooks ORDER BY created_at, id;

-- name: due_deliveries
-- In order per job: a delivery is due only when no earlier one of its webhook and job is
-- pending and not due (backing off, or claimed by a sender); a sender sends one job's
-- deliveries one after the other.
SELECT o.*, w.url, w.secret, w.allow_http, w.allow_private
FROM webhook_outbox AS o JOIN webhooks AS w ON w.id = o.webhook_id
WHERE o.state = 'pending' AND o.next_attempt_at <= :now
  AND NOT EXISTS (
      SELECT 1 FROM webhook_outbox AS earlier
      WHERE earlier.webhook_id = o.webhook_id AND earlier.job_id = o.job_id
        AND earlier.state = 'pending' AND earlier.id < o.id
        AND earlier.next_attempt_at > :now
  )
ORDER BY o.next_attempt_at, o.id
LIMIT :limit;

-- name: lease_delivery
UPDATE webhook_outbox SET next_attempt_at = :until WHERE id = :id;

-- name: record_delivery
UPDATE webhook_outbox SET
    state = :state, tries = tries + :counted, next_attempt_at = :next_attempt_at,
    last_status = :last_status, last_response = :last_response, delivered_at = :delivered_at
WHERE id = :id AND state = 'pending';

-- name: get_jobs
SELECT * FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: list_deliveries
SELECT * FROM webhook_outbox
WHERE (:state IS NULL OR state = :state) AND (:webhook_id IS NULL OR webhook_id = :webhook_id)
ORDER BY id DESC
LIMIT :limit;

-- name: redeliver
UPDATE webhook_outbox SET state = 'pending', tries = 0, next_attempt_at = :now
WHERE id = :id AND state IN ('dead', 'delivered');

-- name: delete_outbox_of_webhook
DELETE FROM webhook_outbox WHERE webhook_id = :webhook_id;

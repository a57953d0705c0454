-- jobdesk's webhook queries for SQLite (schema version 7), each by name.

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

-- name: delete_webhook_of_owner
DELETE FROM webhooks
WHERE (:user_id IS NOT NULL AND user_id = :user_id)
   OR (:project_id IS NOT NULL AND project_id = :project_id);

-- name: insert_webhook
INSERT INTO webhooks (
    id, user_id, project_id, url, secret, statuses, allow_http, allow_private, created_at
) VALUES (
    :id, :user_id, :project_id, :url, :secret, :statuses, :allow_http, :allow_private,
    :created_at
);

-- name: delete_webhook
DELETE FROM webhooks WHERE id = :id;

-- name: count_webhooks
SELECT count(*) FROM webhooks;

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

-- jobdesk schema, version 6 (PostgreSQL): a channel of its own for new work.
--
-- Every change of a job is still announced on jobdesk_changes (event streams, the
-- dashboard). A job that became pending (created, retried, requeued, released) is also
-- announced on jobdesk_ready, with the same payload: waiting workers listen there only,
-- so a busy worker's process reads one notification per job instead of one per change
-- (three for a job created, claimed and completed).
CREATE OR REPLACE FUNCTION jobdesk.announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    payload := json_build_object(
        'id', NEW.id, 'user_id', NEW.user_id, 'type', NEW.type, 'status', NEW.status,
        'progress', NEW.progress, 'message', left(NEW.progress_message, 1000),
        'attempt', NEW.attempt, 'at', NEW.updated_at)::text;
    PERFORM pg_notify('jobdesk_changes', payload);
    IF NEW.status = 'pending' AND (TG_OP = 'INSERT' OR OLD.status <> 'pending') THEN
        PERFORM pg_notify('jobdesk_ready', payload);
    END IF;
    RETURN NULL;
END
$$;

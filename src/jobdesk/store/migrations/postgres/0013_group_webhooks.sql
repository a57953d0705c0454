-- jobdesk schema, version 13 (PostgreSQL): group.* webhook events.
--
-- A webhook may ask for its groups' transitions (group.running, group.completed, ...)
-- as well as its jobs' (webhooks.group_statuses). A group's status is derived from its
-- jobs (jobdesk.groups.summarize), so it changes only when one of its jobs changes, or
-- when cancel_group / retry_group set or clear its cancelled mark: a statement trigger on
-- job_events and a row trigger on groups.cancelled_at judge the group again in that very
-- transaction and, when its status moved, append a group row to webhook_outbox
-- (subject = 'group', job_id = the group's id).
--
-- To judge a group in O(1) per job change, each group a group webhook covers keeps a
-- tally of its jobs per status (groups.tally_*) and each member the status it was
-- counted in (group_jobs.tallied_status). The tally is NULL until first needed (then
-- counted once from the jobs as they stand); set_webhook and remove_webhook clear
-- every tally, so one is never used after a time its triggers were off. Both triggers
-- are DISABLED while no webhook asks for group events (PostgresStore.set_webhook
-- enables them, remove_webhook disables them): without one, nothing is paid.

ALTER TABLE jobdesk.webhooks ADD COLUMN group_statuses text[] NOT NULL DEFAULT '{}';

ALTER TABLE jobdesk.webhook_outbox
    ADD COLUMN subject text NOT NULL DEFAULT 'job' CHECK (subject IN ('job', 'group'));

ALTER TABLE jobdesk.groups
    ADD COLUMN announced_status text,
    ADD COLUMN tally_pending    integer,
    ADD COLUMN tally_processing integer,
    ADD COLUMN tally_completed  integer,
    ADD COLUMN tally_failed     integer,
    ADD COLUMN tally_cancelled  integer;

ALTER TABLE jobdesk.group_jobs ADD COLUMN tallied_status text;

-- twin of: jobdesk.groups.summarize
-- The group's status from its jobs per status and whether cancel_group was the last word
-- (the status only; the progress is not announced).
CREATE FUNCTION jobdesk.group_status(
    pending integer, processing integer, completed integer, failed integer,
    cancelled integer, group_cancelled boolean
) RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
-- plpgsql, not sql: called once per judged change, its plan is kept (an sql function
-- called from plpgsql is planned again at every call).
BEGIN
    RETURN CASE
        WHEN pending + processing = 0 THEN CASE
            WHEN completed = completed + failed + cancelled AND completed > 0 THEN 'completed'
            WHEN group_cancelled OR cancelled = completed + failed + cancelled THEN 'cancelled'
            WHEN completed = 0 THEN 'failed'
            ELSE 'partially_failed'
        END
        WHEN pending = pending + processing + completed + failed + cancelled THEN 'pending'
        ELSE 'running'
    END;
END
$$;

-- Judge one group again after its jobs in p_moves (job id -> the status it entered)
-- moved, or (p_moves empty) after its cancelled mark changed; announce a new status.
CREATE FUNCTION jobdesk.judge_group(p_group_id text, p_moves jsonb, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    g jobdesk.groups%ROWTYPE;
    moved record;
    status text;
BEGIN
    SELECT * INTO g FROM jobdesk.groups WHERE id = p_group_id FOR UPDATE;
    IF NOT FOUND OR NOT EXISTS (
        SELECT 1 FROM jobdesk.webhooks AS w
        WHERE (w.user_id = g.user_id OR w.project_id = g.project_id)
          AND cardinality(w.group_statuses) > 0
    ) THEN
        RETURN;
    END IF;
    IF g.tally_pending IS NULL THEN
        -- Counted once from the jobs as they stand (this statement's moves included).
        UPDATE jobdesk.group_jobs AS gj SET tallied_status = j.status
        FROM jobdesk.jobs AS j
        WHERE gj.group_id = p_group_id AND j.id = gj.job_id;
        SELECT count(*) FILTER (WHERE gj.tallied_status = 'pending'),
               count(*) FILTER (WHERE gj.tallied_status = 'processing'),
               count(*) FILTER (WHERE gj.tallied_status = 'completed'),
               count(*) FILTER (WHERE gj.tallied_status = 'failed'),
               count(*) FILTER (WHERE gj.tallied_status = 'cancelled')
        INTO g.tally_pending, g.tally_processing, g.tally_completed, g.tally_failed,
             g.tally_cancelled
        FROM jobdesk.group_jobs AS gj WHERE gj.group_id = p_group_id;
    ELSE
        -- Each moved job by its own index entry: O(1) per move, whatever the group's size.
        -- (By job_id alone: with group_id in the condition the planner may prefer the
        -- group's whole primary-key range.)
        FOR moved IN
            SELECT gj.position, gj.tallied_status AS was, m.value AS now
            FROM jsonb_each_text(p_moves) AS m
            CROSS JOIN LATERAL (
                SELECT group_jobs.group_id, position, tallied_status FROM jobdesk.group_jobs
                WHERE job_id = m.key OFFSET 0
            ) AS gj
            WHERE gj.group_id = p_group_id AND gj.tallied_status IS DISTINCT FROM m.value
        LOOP
            UPDATE jobdesk.group_jobs SET tallied_status = moved.now
            WHERE group_id = p_group_id AND position = moved.position;
            g.tally_pending := g.tally_pending
                + (moved.now = 'pending')::int
                - (moved.was IS NOT DISTINCT FROM 'pending')::int;
            g.tally_processing := g.tally_processing
                + (moved.now = 'processing')::int
                - (moved.was IS NOT DISTINCT FROM 'processing')::int;
            g.tally_completed := g.tally_completed
                + (moved.now = 'completed')::int
                - (moved.was IS NOT DISTINCT FROM 'completed')::int;
            g.tally_failed := g.tally_failed
                + (moved.now = 'failed')::int
                - (moved.was IS NOT DISTINCT FROM 'failed')::int;
            g.tally_cancelled := g.tally_cancelled
                + (moved.now = 'cancelled')::int
                - (moved.was IS NOT DISTINCT FROM 'cancelled')::int;
        END LOOP;
    END IF;
    status := jobdesk.group_status(
        g.tally_pending, g.tally_processing, g.tally_completed, g.tally_failed,
        g.tally_cancelled, g.cancelled_at IS NOT NULL
    );
    IF status IS DISTINCT FROM coalesce(g.announced_status, 'pending') THEN
        INSERT INTO jobdesk.webhook_outbox (
            webhook_id, job_id, subject, status, attempt, at, next_attempt_at
        )
        SELECT w.id, p_group_id, 'group', status, 0, p_at, p_at
        FROM jobdesk.webhooks AS w
        WHERE (w.user_id = g.user_id OR w.project_id = g.project_id)
          AND status = ANY(w.group_statuses)
        ORDER BY w.id;
    END IF;
    UPDATE jobdesk.groups SET
        announced_status = status,
        tally_pending = g.tally_pending, tally_processing = g.tally_processing,
        tally_completed = g.tally_completed, tally_failed = g.tally_failed,
        tally_cancelled = g.tally_cancelled
    WHERE id = p_group_id;
END
$$;

CREATE FUNCTION jobdesk.job_events_to_group_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched record;
BEGIN
    FOR touched IN
        -- Each group with a job in this statement's entries: the status each job ended
        -- in (its last entry). A new group's first entries (all pending, nothing
        -- counted or announced yet) cannot move it: it is left alone.
        SELECT gj.group_id,
               jsonb_object_agg(last.job_id, last.status) AS moves,
               max(last.at) AS at
        FROM (
            SELECT DISTINCT ON (e.job_id) e.job_id, e.status, e.at
            FROM new_events AS e ORDER BY e.job_id, e.id DESC
        ) AS last
        JOIN jobdesk.group_jobs AS gj ON gj.job_id = last.job_id
        JOIN jobdesk.groups AS g ON g.id = gj.group_id
        GROUP BY gj.group_id, g.tally_pending, g.announced_status
        HAVING g.tally_pending IS NOT NULL OR g.announced_status IS NOT NULL
            OR bool_or(last.status <> 'pending')
        ORDER BY gj.group_id
    LOOP
        PERFORM jobdesk.judge_group(touched.group_id, touched.moves, touched.at);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER job_events_to_group_webhooks AFTER INSERT ON jobdesk.job_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION jobdesk.job_events_to_group_webhooks();
ALTER TABLE jobdesk.job_events DISABLE TRIGGER job_events_to_group_webhooks;

CREATE FUNCTION jobdesk.group_cancel_to_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cancelled_at IS DISTINCT FROM OLD.cancelled_at THEN
        -- Stamped with the cancel's time (when cleared: the last cancel's, due at once).
        PERFORM jobdesk.judge_group(
            NEW.id, '{}'::jsonb, coalesce(NEW.cancelled_at, OLD.cancelled_at)
        );
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER group_cancel_to_webhooks AFTER UPDATE OF cancelled_at ON jobdesk.groups
    FOR EACH ROW EXECUTE FUNCTION jobdesk.group_cancel_to_webhooks();
ALTER TABLE jobdesk.groups DISABLE TRIGGER group_cancel_to_webhooks;

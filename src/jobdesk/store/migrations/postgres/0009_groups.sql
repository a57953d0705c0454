-- jobdesk schema, version 9 (PostgreSQL): groups, made with their jobs in one round trip.
--
-- A group is a user's jobs made together (jobdesk.groups). Its status and progress are
-- not stored: jobdesk.groups.summarize derives them from its jobs when it is read. The
-- jobs table is untouched: membership is its own table, so nothing on the claim or
-- complete path reads or writes groups.

CREATE TABLE jobdesk.groups (
    id                 text COLLATE "C" PRIMARY KEY,
    user_id            text NOT NULL,
    project_id         text,
    name               text,
    -- the fan-in job to make when every job has finished: {"type": ..., "input": ...}
    on_complete        jsonb,
    on_complete_job_id text,
    cancelled_at       timestamptz,
    created_at         timestamptz NOT NULL
);
CREATE INDEX groups_by_user ON jobdesk.groups (user_id, id);
CREATE INDEX groups_fan_in_due ON jobdesk.groups (id)
    WHERE on_complete IS NOT NULL AND on_complete_job_id IS NULL;

CREATE TABLE jobdesk.group_jobs (
    group_id text COLLATE "C" NOT NULL REFERENCES jobdesk.groups (id) ON DELETE CASCADE,
    position integer NOT NULL,
    job_id   text COLLATE "C" NOT NULL,
    PRIMARY KEY (group_id, position)
);
CREATE INDEX group_jobs_by_job ON jobdesk.group_jobs (job_id);

-- create_group: a group and all its jobs, or nothing, in one call (one round trip).
-- twin of: jobdesk.limits.created_today, jobdesk.limits.Limits.for_user
-- twin of: jobdesk.limits.check_daily, jobdesk.limits.check_waiting (count = the jobs)
-- twin of: jobdesk.scheduling.vtime_on_arrival, jobdesk.lifecycle.create
-- As jobdesk.create_job (migration 0007) does for one job: the user's row lock, the
-- judgement of the daily and waiting limits for the whole batch, and the jobs as
-- jobdesk.lifecycle.create makes them, stamped with store_now; it returns the numbers it
-- judged by, for PostgresStore to raise jobdesk.limits' refusal (and check agreement).
CREATE FUNCTION jobdesk.create_group(
    p_group_id text, p_user_id text, p_project_id text, p_name text, p_on_complete jsonb,
    p_jobs jsonb, p_now timestamptz,
    p_default_max_waiting integer, p_default_max_daily integer,
    OUT created boolean, OUT max_waiting integer, OUT max_daily integer,
    OUT created_today integer, OUT waiting integer, OUT store_now timestamptz
) LANGUAGE plpgsql
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    today date;
    counted_day date;
    counted integer;
    n integer;
BEGIN
    store_now := coalesce(p_now, now());
    today := (store_now AT TIME ZONE 'UTC')::date;
    n := jsonb_array_length(p_jobs);
    SELECT u.max_waiting, u.max_daily, u.usage_day, u.created_on_day, u.waiting
    INTO max_waiting, max_daily, counted_day, counted, waiting
    FROM jobdesk.users AS u WHERE u.user_id = p_user_id
    FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO jobdesk.users (user_id) VALUES (p_user_id) ON CONFLICT DO NOTHING;
        SELECT u.max_waiting, u.max_daily, u.usage_day, u.created_on_day, u.waiting
        INTO max_waiting, max_daily, counted_day, counted, waiting
        FROM jobdesk.users AS u WHERE u.user_id = p_user_id
        FOR UPDATE;
    END IF;
    created_today := CASE WHEN counted_day = today THEN counted ELSE 0 END;
    created := created_today + n <= coalesce(max_daily, p_default_max_daily)
               AND waiting + n <= coalesce(max_waiting, p_default_max_waiting);
    IF NOT created THEN
        RETURN;
    END IF;
    UPDATE jobdesk.users AS u SET
        usage_day = today,
        created_on_day = created_today + n,
        waiting = u.waiting + n,
        vtime = CASE WHEN u.waiting = 0 THEN jobdesk.arrival_vtime(u.user_id, u.vtime)
                     ELSE u.vtime END
    WHERE u.user_id = p_user_id;
    INSERT INTO jobdesk.groups (id, user_id, project_id, name, on_complete, created_at)
    VALUES (p_group_id, p_user_id, p_project_id, p_name, p_on_complete, store_now);
    -- One statement for the jobs, their first history entries and the membership.
    WITH n AS MATERIALIZED (
        SELECT e.position::integer AS position, j.*
        FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e (value, position),
             jsonb_to_record(e.value) AS j (
                 id text, project_id text, type text, input jsonb, priority integer,
                 max_attempts integer, run_at timestamptz
             )
    ), jobs AS (
        INSERT INTO jobdesk.jobs (
            id, user_id, project_id, type, status, input, priority, attempt, max_attempts,
            attempt_offset, created_at, run_at, updated_at, cancel_requested
        )
        SELECT id, p_user_id, project_id, type, 'pending', coalesce(input, 'null'::jsonb),
               priority, 0, max_attempts, 0, store_now, coalesce(run_at, store_now),
               store_now, false
        FROM n ORDER BY position
    ), events AS (
        INSERT INTO jobdesk.job_events (job_id, at, status, attempt)
        SELECT id, store_now, 'pending', 0 FROM n ORDER BY position
    )
    INSERT INTO jobdesk.group_jobs (group_id, position, job_id)
    SELECT p_group_id, position, id FROM n;
END
$$;

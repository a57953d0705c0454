-- jobdesk schema, version 7 (PostgreSQL): admission and concurrency apart, a fair claim.
--
-- Per user: max_running (jobs processing at once; further jobs wait), max_waiting
-- (pending jobs a user may hold), max_daily, weight; and the scheduler's state: waiting
-- (the user's pending jobs, kept as a count so that the users with work can be found
-- through an index without reading the jobs) and vtime (the user's virtual clock,
-- jobdesk.scheduling). Stored max_active overrides become max_running.
-- Per type: type_limits holds a pool (max_running across every worker) and a rate,
-- spread evenly (next_start_at: when the next start may come).

ALTER TABLE jobdesk.users
    ADD COLUMN max_running integer,
    ADD COLUMN max_waiting integer,
    ADD COLUMN weight double precision,
    ADD COLUMN waiting integer NOT NULL DEFAULT 0 CHECK (waiting >= 0),
    ADD COLUMN vtime double precision NOT NULL DEFAULT 0;

UPDATE jobdesk.users SET max_running = max_active WHERE max_active IS NOT NULL;
ALTER TABLE jobdesk.users DROP COLUMN max_active;

-- Every user with a job has a row (create makes it); count their pending jobs.
UPDATE jobdesk.users AS u SET waiting = p.count
FROM (
    SELECT user_id, count(*) AS count FROM jobdesk.jobs WHERE status = 'pending'
    GROUP BY user_id
) AS p
WHERE u.user_id = p.user_id;

-- The queue of queues: the users with work, by their clocks (jobdesk.scheduling.plan).
CREATE INDEX users_waiting ON jobdesk.users (vtime, user_id) WHERE waiting > 0;
-- One user's queue, in their own order (jobdesk.scheduling.user_order_key).
CREATE INDEX jobs_user_queue ON jobdesk.jobs (user_id, priority DESC, id)
    WHERE status = 'pending';
-- A type's jobs processing now (its pool), counted at a claim.
CREATE INDEX jobs_running_by_type ON jobdesk.jobs (type) WHERE status = 'processing';

CREATE TABLE jobdesk.type_limits (
    type          text PRIMARY KEY,
    max_running   integer CHECK (max_running >= 0),
    rate_count    integer CHECK (rate_count > 0),
    rate_period   double precision CHECK (rate_period > 0),
    next_start_at timestamptz,
    CHECK ((rate_count IS NULL) = (rate_period IS NULL))
);

-- A user's clock when they go from nothing waiting to something waiting: twin of
-- jobdesk.scheduling.vtime_on_arrival, the floor being the smallest clock among the
-- other waiting users (read, not locked: a floor a moment old is as good).
CREATE FUNCTION jobdesk.arrival_vtime(p_user_id text, p_vtime double precision)
RETURNS double precision LANGUAGE sql STABLE AS $$
    SELECT greatest(p_vtime, coalesce(min(o.vtime), p_vtime))
    FROM jobdesk.users AS o
    WHERE o.waiting > 0 AND o.user_id <> p_user_id
$$;

-- create_job (version 4's, judged by the new admission limits): the daily count and the
-- pending jobs the user holds (twin of jobdesk.limits.check_daily and check_waiting, with
-- Limits.for_user's defaults); it counts the job as waiting and, when the user had
-- nothing waiting, brings their clock up to the floor (jobdesk.scheduling.vtime_on_arrival).
DROP FUNCTION jobdesk.create_job(
    text, text, text, text, jsonb, integer, integer, timestamptz, text, timestamptz,
    integer, integer
);
CREATE FUNCTION jobdesk.create_job(
    p_id text, p_user_id text, p_project_id text, p_type text, p_input jsonb,
    p_priority integer, p_max_attempts integer, p_run_at timestamptz,
    p_idempotency_key text, p_now timestamptz,
    p_default_max_waiting integer, p_default_max_daily integer,
    OUT created boolean, OUT max_waiting integer, OUT max_daily integer,
    OUT created_today integer, OUT waiting integer, OUT store_now timestamptz
) LANGUAGE plpgsql
SET enable_seqscan = off
-- enable_seqscan = off prices any seq scan (even of the few type_limits rows) at 1e10,
-- which would have JIT compile each statement: 280 ms a claim, measured.
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    today date;
    counted_day date;
    counted integer;
BEGIN
    store_now := coalesce(p_now, now());
    today := (store_now AT TIME ZONE 'UTC')::date;
    -- The user's row lock: it serialises one user's creates, retries and claims.
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
    -- twin of jobdesk.limits.created_today (the daily reset)
    created_today := CASE WHEN counted_day = today THEN counted ELSE 0 END;
    -- twin of jobdesk.limits.check_daily and check_waiting, one job
    created := created_today < coalesce(max_daily, p_default_max_daily)
               AND waiting < coalesce(max_waiting, p_default_max_waiting);
    IF NOT created THEN
        RETURN;
    END IF;
    UPDATE jobdesk.users AS u SET
        usage_day = today,
        created_on_day = created_today + 1,
        waiting = u.waiting + 1,
        vtime = CASE WHEN u.waiting = 0 THEN jobdesk.arrival_vtime(u.user_id, u.vtime)
                     ELSE u.vtime END
    WHERE u.user_id = p_user_id;
    -- The job as jobdesk.lifecycle.create makes it, stamped with store_now.
    INSERT INTO jobdesk.jobs (
        id, user_id, project_id, type, status, input, priority, attempt, max_attempts,
        attempt_offset, created_at, run_at, updated_at, cancel_requested, idempotency_key
    ) VALUES (
        p_id, p_user_id, p_project_id, p_type, 'pending', p_input, p_priority, 0,
        p_max_attempts, 0, store_now, coalesce(p_run_at, store_now), store_now, false,
        p_idempotency_key
    );
    INSERT INTO jobdesk.job_events (job_id, at, status, attempt)
    VALUES (p_id, store_now, 'pending', 0);
END
$$;

-- The fair claim: twin of jobdesk.scheduling.plan with the walk that finds its users
-- (jobdesk.scheduling.candidates), and of jobdesk.lifecycle.start. In one call, so a claim
-- stays one round trip:
-- 1. the walk: waiting users by (vtime, user_id), read without locks, passing over a user
--    at their running cap or without a job this worker may start now; each other user is
--    then locked (SKIP LOCKED: another claimer's users are its own) and their running
--    count read again under the lock; the first p_limit so locked are the candidates;
-- 2. the plan: again and again the open candidate with the smallest (vtime, user_id)
--    starts their first startable job (their own order: priority, then age); their clock
--    moves on by 1 / weight; a type whose pool fills or whose rate is spent closes;
-- 3. the writes: the jobs started as jobdesk.lifecycle.start does, their history, the
--    users' clocks and waiting counts, the types' next start times.
-- A claim locks users before any pending job and every lock it takes after them with SKIP
-- LOCKED; it waits for a lock only while it holds none (for the first user it found
-- locked: a lone user's claims queue instead of returning nothing). Writers lock jobs,
-- then users (user_id order), then types (type order). So no two wait on each other in a
-- cycle. A capped user is never locked, and never costs more than counting their running
-- jobs (jobs_by_user_status): their backlog is not read.
CREATE FUNCTION jobdesk.claim_fair(
    p_worker_id text, p_types text[], p_limit integer, p_now timestamptz,
    p_lease_seconds double precision, p_default_max_running integer
) RETURNS SETOF jobdesk.jobs LANGUAGE plpgsql
SET enable_seqscan = off
-- enable_seqscan = off prices any seq scan (even of the few type_limits rows) at 1e10,
-- which would have JIT compile each statement: 280 ms a claim, measured.
SET jit = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_user record;
    v_locked record;
    v_job_id text;
    v_job_type text;
    v_gate record;
    v_running integer;
    v_room integer;
    v_best integer;
    v_first_locked text;
    v_holding boolean := false;
    v_pass integer;
    v_limited text[];
    -- the candidates, in walk order
    c_user text[] := '{}';
    c_vtime double precision[] := '{}';
    c_weight double precision[] := '{}';
    c_room integer[] := '{}';
    c_open boolean[] := '{}';
    c_starts integer[] := '{}';
    -- each candidate's first startable job, found and locked by the walk
    c_head text[] := '{}';
    c_head_type text[] := '{}';
    -- types closed for the rest of this claim; started jobs (in order) and their types
    v_closed text[];
    v_taken text[] := '{}';
    v_taken_types text[] := '{}';
    v_gate_types text[] := '{}';
    v_next_starts timestamptz[] := '{}';
BEGIN
    IF p_limit < 1 THEN
        RETURN;
    END IF;
    -- The limited types (a claim of any other type skips the gate), and those whose gate
    -- is already closed: a full pool, a rate not yet due (twin of TypeGate.open).
    SELECT coalesce(array_agg(t.type), '{}'),
           coalesce(array_agg(t.type) FILTER (
               WHERE (t.next_start_at IS NOT NULL AND t.next_start_at > v_now)
                  OR (t.max_running IS NOT NULL AND t.max_running <= (
                         SELECT count(*) FROM jobdesk.jobs AS r
                         WHERE r.type = t.type AND r.status = 'processing'))
           ), '{}')
    INTO v_limited, v_closed
    FROM jobdesk.type_limits AS t;

    -- 1. The walk (twin of jobdesk.scheduling.candidates): each user locked (SKIP LOCKED:
    -- another claimer's users are its own), then, under the lock, their running jobs
    -- counted and their first startable job found and locked: the plan's first start
    -- for that user, if the plan gets to them. If every user with work was locked by other
    -- claimers, the claim (holding no lock yet) waits for the first of them, then walks
    -- again: by then those claims have committed, so it plans over every user, as one
    -- claimer alone would, instead of over the one it waited for.
    FOR v_pass IN 1 .. 2 LOOP
        FOR v_user IN
            SELECT u.user_id FROM jobdesk.users AS u
            WHERE u.waiting > 0
            ORDER BY u.vtime, u.user_id
        LOOP
            SELECT u.vtime, coalesce(u.weight, 1.0) AS weight,
                   coalesce(u.max_running, p_default_max_running) AS max_running
            INTO v_locked
            FROM jobdesk.users AS u
            WHERE u.user_id = v_user.user_id AND u.waiting > 0
            FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                v_first_locked := coalesce(v_first_locked, v_user.user_id);
                CONTINUE;
            END IF;
            v_holding := true;
            SELECT count(*) INTO v_running FROM jobdesk.jobs AS r
            WHERE r.user_id = v_user.user_id AND r.status = 'processing';
            CONTINUE WHEN v_running >= v_locked.max_running;
            SELECT j.id, j.type INTO v_job_id, v_job_type FROM jobdesk.jobs AS j
            WHERE j.user_id = v_user.user_id AND j.status = 'pending' AND j.run_at <= v_now
              AND (p_types IS NULL OR j.type = ANY(p_types)) AND j.type <> ALL(v_closed)
            ORDER BY j.priority DESC, j.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            c_user := c_user || v_user.user_id;
            c_vtime := c_vtime || v_locked.vtime;
            c_weight := c_weight || v_locked.weight;
            c_room := c_room || (v_locked.max_running - v_running);
            c_open := c_open || true;
            c_starts := c_starts || 0;
            c_head := c_head || v_job_id;
            c_head_type := c_head_type || v_job_type;
            EXIT WHEN cardinality(c_user) >= p_limit;
        END LOOP;
        EXIT WHEN cardinality(c_user) > 0 OR v_holding OR v_first_locked IS NULL OR v_pass = 2;
        -- Holding no lock, wait for the first user another claimer held.
        PERFORM 1 FROM jobdesk.users AS u WHERE u.user_id = v_first_locked FOR UPDATE;
        v_first_locked := NULL;
    END LOOP;
    IF cardinality(c_user) = 0 THEN
        RETURN;
    END IF;

    -- 2. The plan (twin of jobdesk.scheduling.plan).
    WHILE cardinality(v_taken) < p_limit LOOP
        v_best := NULL;
        FOR i IN 1 .. cardinality(c_user) LOOP
            IF c_open[i] AND (v_best IS NULL OR c_vtime[i] < c_vtime[v_best]
                              OR (c_vtime[i] = c_vtime[v_best] AND c_user[i] < c_user[v_best]))
            THEN
                v_best := i;
            END IF;
        END LOOP;
        EXIT WHEN v_best IS NULL;
        IF c_room[v_best] <= 0 THEN
            c_open[v_best] := false;
            CONTINUE;
        END IF;
        IF c_head[v_best] IS NOT NULL AND c_head_type[v_best] <> ALL(v_closed) THEN
            -- The job the walk found (and locked) for this user.
            v_job_id := c_head[v_best];
            v_job_type := c_head_type[v_best];
        ELSE
            SELECT j.id, j.type INTO v_job_id, v_job_type FROM jobdesk.jobs AS j
            WHERE j.user_id = c_user[v_best] AND j.status = 'pending' AND j.run_at <= v_now
              AND (p_types IS NULL OR j.type = ANY(p_types)) AND j.type <> ALL(v_closed)
              AND j.id <> ALL(v_taken)
            ORDER BY j.priority DESC, j.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                c_open[v_best] := false;
                CONTINUE;
            END IF;
        END IF;
        c_head[v_best] := NULL;
        -- A limited type's gate (twin of TypeGate.open and TypeGate.started).
        IF v_job_type = ANY(v_limited) THEN
            SELECT t.max_running, t.rate_count, t.rate_period, t.next_start_at INTO v_gate
            FROM jobdesk.type_limits AS t WHERE t.type = v_job_type
            FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                -- another claimer holds this type's gate: closed for this claim
                v_closed := v_closed || v_job_type;
                CONTINUE;
            END IF;
            v_room := NULL;
            IF v_gate.max_running IS NOT NULL THEN
                SELECT v_gate.max_running - count(*) INTO v_room FROM jobdesk.jobs AS r
                WHERE r.type = v_job_type AND r.status = 'processing';
                v_room := v_room - coalesce(
                    (SELECT count(*) FROM unnest(v_taken_types) AS s WHERE s = v_job_type), 0);
            END IF;
            IF (v_room IS NOT NULL AND v_room <= 0)
               OR (v_job_type = ANY(v_gate_types) AND v_gate.rate_count IS NOT NULL)
               OR (v_gate.next_start_at IS NOT NULL AND v_gate.next_start_at > v_now) THEN
                v_closed := v_closed || v_job_type;
                CONTINUE;
            END IF;
            IF v_gate.rate_count IS NOT NULL THEN
                v_gate_types := v_gate_types || v_job_type;
                v_next_starts := v_next_starts
                    || (greatest(coalesce(v_gate.next_start_at, v_now), v_now)
                        + ceil(v_gate.rate_period * 1000000 / v_gate.rate_count)
                          * interval '1 microsecond');
            END IF;
        END IF;
        v_taken := v_taken || v_job_id;
        v_taken_types := v_taken_types || v_job_type;
        c_vtime[v_best] := c_vtime[v_best] + 1.0 / c_weight[v_best];
        c_room[v_best] := c_room[v_best] - 1;
        c_starts[v_best] := c_starts[v_best] + 1;
    END LOOP;
    IF cardinality(v_taken) = 0 THEN
        RETURN;
    END IF;

    -- 3. The writes.
    UPDATE jobdesk.users AS u SET vtime = c.vtime, waiting = u.waiting - c.starts
    FROM unnest(c_user, c_vtime, c_starts) AS c (user_id, vtime, starts)
    WHERE u.user_id = c.user_id AND c.starts > 0;
    UPDATE jobdesk.type_limits AS t SET next_start_at = g.next_start_at
    FROM unnest(v_gate_types, v_next_starts) AS g (type, next_start_at)
    WHERE t.type = g.type;
    RETURN QUERY
    WITH started AS (
        UPDATE jobdesk.jobs AS j SET
            status = 'processing',
            attempt = j.attempt + 1,
            worker_id = p_worker_id,
            started_at = v_now,
            lease_expires_at = v_now + make_interval(secs => p_lease_seconds),
            progress = 0,
            progress_message = NULL,
            cancel_requested = false,
            error = NULL,
            updated_at = v_now
        WHERE j.id = ANY(v_taken)
        RETURNING j.*
    ), started_events AS (
        INSERT INTO jobdesk.job_events (job_id, at, status, attempt, worker_id)
        SELECT s.id, s.updated_at, s.status, s.attempt, s.worker_id FROM started AS s
    )
    SELECT s.* FROM started AS s ORDER BY array_position(v_taken, s.id);
END
$$;

DROP FUNCTION jobdesk.lock_ready(text[], integer, timestamptz);

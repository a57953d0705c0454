-- jobdesk schema, version 11 (PostgreSQL): the fair claim in a few statements per claim.
--
-- Version 7's jobdesk.claim_fair ran three statements for each user it walked (lock, count,
-- first job) and one for each job it started after a user's first: a claim of 50 jobs over
-- 10 users made about 80, and they cost as much as the starts themselves (measured with
-- pg_stat_statements in the peer harness's drain). This one runs the same rule with
-- statements per page of users, not per user or per job: a page of users locked in one
-- statement, their running jobs counted in one, and every job the plan will start locked in
-- one, whatever the number of users and jobs.
--
-- jobs_queue (pending jobs by priority and id) served version 5's claim, which took jobs
-- across users; every reader of pending jobs now goes by user (jobs_user_queue), so it only
-- cost a write per job created.
DROP INDEX jobdesk.jobs_queue;
-- The jobs processing now, by user then type: a user's running jobs are counted for every
-- user the walk passes, and through jobs_running_by_type (type) that count read every
-- processing job for each user (the planner sees two partial indexes of one row each and
-- took it). A type's pool count reads this whole index, which holds only what is running.
DROP INDEX jobdesk.jobs_running_by_type;
CREATE INDEX jobs_running ON jobdesk.jobs (user_id, type) WHERE status = 'processing';

-- The fair claim: twin of jobdesk.scheduling.plan with the walk that finds its users
-- (jobdesk.scheduling.candidates), and of jobdesk.lifecycle.start. In one call, so a claim
-- stays one round trip:
-- 1. the walk, a page of users at a time: the waiting users by (vtime, user_id), passing over
--    (without locking them) those at their running cap or without a job this worker may start
--    now, are locked (SKIP LOCKED: another claimer's users are its own), up to as many as the
--    claim still needs; then, in a statement of its own (a fresh snapshot, under the locks),
--    their running jobs are counted again and their startable jobs looked for. The first
--    p_limit users so confirmed are the candidates;
-- 2. the plan's counts: how many jobs each candidate would start if every job of theirs were
--    startable (their clocks, weights and rooms only), and that many of each candidate's
--    first jobs, locked in one statement (SKIP LOCKED);
-- 3. the plan itself: again and again the open candidate with the smallest (vtime, user_id)
--    starts their first startable job (their own order: priority, then age), taken from
--    those locked jobs (a candidate who runs out, because a type closed, looks for one more
--    job of their own); their clock moves on by 1 / weight; a type whose pool fills or whose
--    rate is spent closes;
-- 4. the writes: the jobs started as jobdesk.lifecycle.start does, their history, the users'
--    clocks and waiting counts, the types' next start times.
-- A claim locks users before any pending job and every lock it takes after them with SKIP
-- LOCKED; it waits for a lock only while it holds none (for the first user it could not
-- lock: a lone user's claims queue instead of returning nothing). Writers lock jobs, then
-- users (user_id order), then types (type order). So no two wait on each other in a cycle.
-- A capped user is never locked, and never costs more than counting their running jobs
-- (jobs_running): their backlog is not read.
CREATE OR REPLACE FUNCTION jobdesk.claim_fair(
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
    v_pass integer;
    v_holding boolean := false;
    v_wanted integer;
    v_after_vtime double precision;
    v_after_user text;
    v_first text;
    v_best integer;
    v_pos integer;
    v_total integer;
    v_job_id text;
    v_job_type text;
    v_gate record;
    v_room integer;
    v_limited text[];
    -- a page of the walk: the users it locked, in walk order, and under the lock their
    -- running jobs and whether they have a job to start
    w_user text[];
    w_vtime double precision[];
    w_weight double precision[];
    w_max integer[];
    w_running integer[];
    w_ready boolean[];
    -- the candidates, in walk order
    c_user text[] := '{}';
    c_vtime double precision[] := '{}';
    c_weight double precision[] := '{}';
    c_room integer[] := '{}';
    c_open boolean[];
    c_starts integer[];
    -- the plan's counts (step 2): the starts of each candidate, and the clocks and rooms
    -- they are counted with
    c_want integer[];
    t_vtime double precision[];
    t_room integer[];
    -- the jobs step 2 locked, by candidate then in the candidate's order, and where each
    -- candidate's next and last locked job are
    q_id text[];
    q_type text[];
    q_owner bigint[];
    c_next integer[];
    c_last integer[];
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

    -- 1. The walk (twin of jobdesk.scheduling.candidates), a page at a time. If it could
    -- lock no user at all (every user with work was locked by other claimers), the claim,
    -- holding no lock, waits for the first of them, then walks again: by then those claims
    -- have committed, so it plans over every user, as one claimer alone would, instead of
    -- over the one it waited for.
    FOR v_pass IN 1 .. 2 LOOP
        v_after_vtime := NULL;
        v_after_user := NULL;
        LOOP
            v_wanted := p_limit - cardinality(c_user);
            SELECT coalesce(array_agg(l.user_id ORDER BY l.vtime, l.user_id), '{}'),
                   coalesce(array_agg(l.vtime ORDER BY l.vtime, l.user_id), '{}'),
                   coalesce(array_agg(l.weight ORDER BY l.vtime, l.user_id), '{}'),
                   coalesce(array_agg(l.max_running ORDER BY l.vtime, l.user_id), '{}')
            INTO w_user, w_vtime, w_weight, w_max
            FROM (
                SELECT u.user_id, u.vtime, coalesce(u.weight, 1.0) AS weight,
                       coalesce(u.max_running, p_default_max_running) AS max_running
                FROM jobdesk.users AS u
                -- A user's first startable job, looked for only once they passed the filters
                -- on their own row (a lateral join: an EXISTS would be planned as a join with
                -- every pending job)
                CROSS JOIN LATERAL (
                    SELECT FROM jobdesk.jobs AS j
                    WHERE j.user_id = u.user_id AND j.status = 'pending' AND j.run_at <= v_now
                      AND (p_types IS NULL OR j.type = ANY(p_types)) AND j.type <> ALL(v_closed)
                    ORDER BY j.priority DESC, j.id  -- the user's queue (jobs_user_queue)
                    LIMIT 1
                ) AS due
                WHERE u.waiting > 0
                  AND (v_after_user IS NULL OR (u.vtime, u.user_id) > (v_after_vtime, v_after_user))
                  AND (SELECT count(*) FROM jobdesk.jobs AS r
                       WHERE r.user_id = u.user_id AND r.status = 'processing')
                      < coalesce(u.max_running, p_default_max_running)
                ORDER BY u.vtime, u.user_id
                LIMIT v_wanted
                FOR UPDATE OF u SKIP LOCKED
            ) AS l;
            EXIT WHEN cardinality(w_user) = 0;
            v_holding := true;
            v_after_vtime := w_vtime[cardinality(w_user)];
            v_after_user := w_user[cardinality(w_user)];
            -- Under the locks, in a statement of its own (a fresh snapshot): the running jobs
            -- of each locked user, and whether they have a job to start now.
            SELECT array_agg(r.running ORDER BY w.ord), array_agg(r.ready ORDER BY w.ord)
            INTO w_running, w_ready
            FROM unnest(w_user) WITH ORDINALITY AS w (user_id, ord)
            CROSS JOIN LATERAL (
                SELECT (SELECT count(*) FROM jobdesk.jobs AS r
                        WHERE r.user_id = w.user_id AND r.status = 'processing')::integer
                           AS running,
                       (SELECT true FROM jobdesk.jobs AS j
                        WHERE j.user_id = w.user_id AND j.status = 'pending'
                          AND j.run_at <= v_now
                          AND (p_types IS NULL OR j.type = ANY(p_types))
                          AND j.type <> ALL(v_closed)
                        ORDER BY j.priority DESC, j.id
                        LIMIT 1) IS NOT NULL AS ready
            ) AS r;
            FOR i IN 1 .. cardinality(w_user) LOOP
                CONTINUE WHEN w_running[i] >= w_max[i] OR NOT w_ready[i];
                c_user := c_user || w_user[i];
                c_vtime := c_vtime || w_vtime[i];
                c_weight := c_weight || w_weight[i];
                c_room := c_room || (w_max[i] - w_running[i]);
            END LOOP;
            EXIT WHEN cardinality(w_user) < v_wanted OR cardinality(c_user) >= p_limit;
        END LOOP;
        EXIT WHEN cardinality(c_user) > 0 OR v_holding OR v_pass = 2;
        -- Holding no lock, wait for the first user with work another claimer held.
        SELECT u.user_id INTO v_first
        FROM jobdesk.users AS u
        CROSS JOIN LATERAL (
            SELECT FROM jobdesk.jobs AS j
            WHERE j.user_id = u.user_id AND j.status = 'pending' AND j.run_at <= v_now
              AND (p_types IS NULL OR j.type = ANY(p_types)) AND j.type <> ALL(v_closed)
            ORDER BY j.priority DESC, j.id
            LIMIT 1
        ) AS due
        WHERE u.waiting > 0
          AND (SELECT count(*) FROM jobdesk.jobs AS r
               WHERE r.user_id = u.user_id AND r.status = 'processing')
              < coalesce(u.max_running, p_default_max_running)
        ORDER BY u.vtime, u.user_id
        LIMIT 1;
        EXIT WHEN NOT FOUND;
        PERFORM 1 FROM jobdesk.users AS u WHERE u.user_id = v_first FOR UPDATE;
    END LOOP;
    IF cardinality(c_user) = 0 THEN
        RETURN;
    END IF;
    c_open := array_fill(true, ARRAY[cardinality(c_user)]);
    c_starts := array_fill(0, ARRAY[cardinality(c_user)]);

    -- 2. The plan's counts: the plan below over clocks, weights and rooms alone. Without
    -- type limits they are the plan's starts; a closed type only makes a candidate look
    -- for one more job in step 3.
    c_want := array_fill(0, ARRAY[cardinality(c_user)]);
    t_vtime := c_vtime;
    t_room := c_room;
    v_total := 0;
    WHILE v_total < p_limit LOOP
        v_best := NULL;
        FOR i IN 1 .. cardinality(c_user) LOOP
            IF t_room[i] > 0 AND (v_best IS NULL OR t_vtime[i] < t_vtime[v_best]
                                  OR (t_vtime[i] = t_vtime[v_best] AND c_user[i] < c_user[v_best]))
            THEN
                v_best := i;
            END IF;
        END LOOP;
        EXIT WHEN v_best IS NULL;
        c_want[v_best] := c_want[v_best] + 1;
        t_vtime[v_best] := t_vtime[v_best] + 1.0 / c_weight[v_best];
        t_room[v_best] := t_room[v_best] - 1;
        v_total := v_total + 1;
    END LOOP;
    SELECT coalesce(array_agg(f.id ORDER BY c.ord, f.priority DESC, f.id), '{}'),
           coalesce(array_agg(f.type ORDER BY c.ord, f.priority DESC, f.id), '{}'),
           coalesce(array_agg(c.ord ORDER BY c.ord, f.priority DESC, f.id), '{}')
    INTO q_id, q_type, q_owner
    FROM unnest(c_user, c_want) WITH ORDINALITY AS c (user_id, want, ord)
    CROSS JOIN LATERAL (
        SELECT j.id, j.type, j.priority FROM jobdesk.jobs AS j
        WHERE j.user_id = c.user_id AND j.status = 'pending' AND j.run_at <= v_now
          AND (p_types IS NULL OR j.type = ANY(p_types)) AND j.type <> ALL(v_closed)
        ORDER BY j.priority DESC, j.id
        LIMIT c.want
        FOR UPDATE SKIP LOCKED
    ) AS f;
    c_next := array_fill(1, ARRAY[cardinality(c_user)]);
    c_last := array_fill(0, ARRAY[cardinality(c_user)]);
    FOR v_pos IN 1 .. cardinality(q_id) LOOP
        IF c_last[q_owner[v_pos]] = 0 THEN
            c_next[q_owner[v_pos]] := v_pos;
        END IF;
        c_last[q_owner[v_pos]] := v_pos;
    END LOOP;

    -- 3. The plan (twin of jobdesk.scheduling.plan).
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
        -- The candidate's next locked job whose type is open, else one more of their own.
        v_job_id := NULL;
        WHILE c_next[v_best] <= c_last[v_best] LOOP
            v_pos := c_next[v_best];
            c_next[v_best] := v_pos + 1;
            IF q_type[v_pos] <> ALL(v_closed) THEN
                v_job_id := q_id[v_pos];
                v_job_type := q_type[v_pos];
                EXIT;
            END IF;
        END LOOP;
        IF v_job_id IS NULL THEN
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

    -- 4. The writes.
    UPDATE jobdesk.users AS u SET vtime = c.vtime, waiting = u.waiting - c.starts
    FROM unnest(c_user, c_vtime, c_starts) AS c (user_id, vtime, starts)
    WHERE u.user_id = c.user_id AND c.starts > 0;
    IF cardinality(v_gate_types) > 0 THEN
        UPDATE jobdesk.type_limits AS t SET next_start_at = g.next_start_at
        FROM unnest(v_gate_types, v_next_starts) AS g (type, next_start_at)
        WHERE t.type = g.type;
    END IF;
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


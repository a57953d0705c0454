-- jobdesk schema, version 10 (PostgreSQL): webhooks and their transactional outbox.
--
-- A webhook is a user's or a project's endpoint. Each status change of a job appends a
-- row to job_events in the transaction that makes it; a statement trigger on job_events
-- (job_events_to_webhooks) copies those entries to webhook_outbox for each webhook that
-- asked for them, in the same transaction. The trigger is DISABLED while no webhook
-- exists (PostgresStore.set_webhook enables it, remove_webhook disables it with the last
-- one): with no webhook the claim and complete paths pay nothing for it. Senders
-- (jobdesk serve, jobdesk webhooks deliver) read the outbox.

CREATE TABLE jobdesk.webhooks (
    id            text COLLATE "C" PRIMARY KEY,
    user_id       text,
    project_id    text,
    url           text NOT NULL,
    secret        text NOT NULL,
    statuses      text[] NOT NULL,
    allow_http    boolean NOT NULL DEFAULT false,
    allow_private boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    CHECK ((user_id IS NULL) <> (project_id IS NULL))
);
CREATE UNIQUE INDEX webhooks_of_user ON jobdesk.webhooks (user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX webhooks_of_project ON jobdesk.webhooks (project_id)
    WHERE project_id IS NOT NULL;

CREATE TABLE jobdesk.webhook_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      text COLLATE "C" NOT NULL,
    job_id          text COLLATE "C" NOT NULL,
    status          text NOT NULL,
    attempt         integer NOT NULL,
    at              timestamptz NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    tries           integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_status     integer,
    last_response   text,
    delivered_at    timestamptz
);
CREATE INDEX webhook_outbox_due ON jobdesk.webhook_outbox (next_attempt_at, id)
    WHERE state = 'pending';
CREATE INDEX webhook_outbox_of_job ON jobdesk.webhook_outbox (webhook_id, job_id, id)
    WHERE state = 'pending';
CREATE INDEX webhook_outbox_by_state ON jobdesk.webhook_outbox (state, id);

CREATE FUNCTION jobdesk.job_events_to_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobdesk.webhook_outbox (webhook_id, job_id, status, attempt, at, next_attempt_at)
    SELECT w.id, e.job_id, e.status, e.attempt, e.at, e.at
    FROM new_events AS e
    JOIN jobdesk.jobs AS j ON j.id = e.job_id
    JOIN jobdesk.webhooks AS w ON w.user_id = j.user_id OR w.project_id = j.project_id
    WHERE e.status = ANY(w.statuses)
    ORDER BY e.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER job_events_to_webhooks AFTER INSERT ON jobdesk.job_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION jobdesk.job_events_to_webhooks();
ALTER TABLE jobdesk.job_events DISABLE TRIGGER job_events_to_webhooks;

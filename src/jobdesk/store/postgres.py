"""PostgresStore: many API processes and many workers on one PostgreSQL database.

psycopg 3 with a connection pool; no ORM. Read-modify-write operations lock the
rows they read (``FOR UPDATE``); a user's creates and retries are serialised by
the lock on that user's row in ``jobdesk.users``; claims are one statement with
``FOR UPDATE SKIP LOCKED``. Time is the database's ``now()`` unless a test
injects a clock. A trigger on ``jobdesk.jobs`` announces each committed change
with ``NOTIFY`` on the ``jobdesk_changes`` channel; one listening connection per
process feeds the process's :class:`~jobdesk.changes.ChangeHub` and comes back by
itself after the connection or the server goes away.

This module holds the store's job, token and user operations; the rest is one
concept per module: :mod:`~jobdesk.store.postgres_connections` (pool,
transactions and their one retry, migrations), :mod:`~jobdesk.store.postgres_rows`
(rows to models and back), :mod:`~jobdesk.store.postgres_channel` (LISTEN),
:mod:`~jobdesk.store.postgres_scheduling` (claims, the queue's peek, type limits,
why a job waits, the limits of retries and starts by id) and
:mod:`~jobdesk.store.postgres_operator_queries` (the operator's views) and
:mod:`~jobdesk.store.postgres_schedules` (schedules and their runner).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg

from jobdesk import lifecycle
from jobdesk.errors import InvalidInput, JobdeskError, JobNotFound, StoreUnavailable
from jobdesk.limits import Limits, check_daily, check_waiting, usage
from jobdesk.models import (
    Completion,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    TokenRecord,
    UserLimits,
    UserUsage,
    Worker,
)
from jobdesk.store import Change
from jobdesk.store.common import ABOVE_EVERY_ID, completion_changes
from jobdesk.store.postgres_connections import Connection, Q, migrations
from jobdesk.store.postgres_retention import PostgresRetention
from jobdesk.store.postgres_rows import (
    NeedsLock,
    decide,
    job_from_row,
    judge_limits,
    needs_the_locked_path,
    pending_moves,
    time_text,
    token_from_row,
    types_param,
    write_params,
)
from jobdesk.store.postgres_schedules import PostgresSchedules
from jobdesk.store.postgres_webhooks import PostgresWebhooks

__all__ = ["PostgresStore", "Q", "job_from_row", "migrations"]


class PostgresStore(PostgresWebhooks, PostgresSchedules, PostgresRetention):
    """The :class:`~jobdesk.store.Store` on PostgreSQL (``postgresql://user@host/db``)."""

    # -- jobs -------------------------------------------------------------------------------

    async def insert_job(self, spec: NewJob, limits: Limits) -> tuple[Job, bool]:
        params = {
            "id": spec.id,
            "user_id": spec.user_id,
            "project_id": spec.project_id,
            "type": spec.type,
            "input": spec.input_json,
            "priority": spec.priority,
            "max_attempts": spec.max_attempts,
            "run_at": spec.run_at,
            "idempotency_key": spec.idempotency_key,
            "now": self._now_param(),
            "default_max_waiting": limits.max_waiting_per_user,
            "default_max_daily": limits.max_created_per_day,
        }

        async def work(connection: Connection) -> tuple[Job, bool]:
            if spec.idempotency_key is not None:
                row = await self._fetch_one(connection, Q["select_job_by_idempotency_key"], params)
                if row is not None:
                    return lifecycle.replay(job_from_row(row), spec), False
            # One round trip: the function locks the user's row, judges, and stores the
            # job only if the limits leave room (migration 0007).
            row = await self._fetch_one(connection, Q["create_job"], params)
            assert row is not None
            judge_limits(row, limits)
            if spec.traceparent is not None:  # tracing on: in the create's transaction
                await connection.execute(
                    Q["set_traceparent"], {"id": spec.id, "traceparent": spec.traceparent}
                )
            return lifecycle.create(spec, row["store_now"]), True

        async def done(connection: Connection) -> tuple[Job, bool] | None:
            # The job's id is made here, once: if a create whose connection broke had
            # committed, its job is there.
            row = await self._fetch_one(connection, Q["select_job"], {"id": spec.id, "now": None})
            return None if row is None else (job_from_row(row), True)

        # One statement, autocommitted, unless a traceparent is written beside the job.
        single = spec.traceparent is None
        try:
            return await self._run(work, single=single, done=done)
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, psycopg.errors.UniqueViolation):
                if cause.diag.constraint_name != "jobs_pkey":
                    # Two creates with one idempotency key raced: the other committed first.
                    return await self._run(work, single=single, done=done)
                # A broken create committed after all while this one was tried again.
                found = await self._run(done, write=False, single=True)
                if found is not None:
                    return found
            raise

    async def insert_jobs(self, specs: Sequence[NewJob], limits: Limits) -> list[Job]:
        user_id = specs[0].user_id

        async def work(connection: Connection) -> list[Job]:
            params = {"user_id": user_id, "now": self._now_param()}
            user = await self._fetch_one(connection, Q["lock_user_usage"], params)
            assert user is not None
            now: datetime = user["store_now"]
            current = usage(user_id, 0, user, limits, now)
            check_daily(current.created_today, current.max_daily, now, count=len(specs))
            check_waiting(current.waiting, current.max_waiting, count=len(specs))
            jobs = [lifecycle.create(spec, now) for spec in specs]
            # Every job of a batch starts alike (lifecycle.create: one status, attempt
            # and time); the SQL writes those once, and the columns that vary as arrays.
            first = jobs[0]
            columns = {
                "user_id": user_id,
                "created_at": now,
                "status": first.status.value,
                "attempt": first.attempt,
                "ids": json.dumps([job.id for job in jobs]),
                "project_ids": json.dumps([job.project_id for job in jobs]),
                "types": json.dumps([job.type for job in jobs]),
                "inputs": "[" + ",".join([spec.input_json for spec in specs]) + "]",
                "priorities": json.dumps([job.priority for job in jobs]),
                "max_attempts": json.dumps([job.max_attempts for job in jobs]),
                "run_ats": json.dumps([time_text(spec.run_at) for spec in specs]),
                "traceparents": json.dumps([job.traceparent for job in jobs]),
            }
            await connection.execute(Q["insert_jobs"], columns)
            await connection.execute(
                Q["count_created"],
                {
                    "user_id": user_id,
                    "day": now.astimezone(UTC).date(),
                    "count": current.created_today + len(specs),
                    "added": len(specs),
                },
            )
            return jobs

        return await self._run(work)

    async def get_job(self, job_id: str, user_id: str | None = None) -> Job | None:
        async def work(connection: Connection) -> Job | None:
            params = {"id": job_id, "user_id": user_id, "now": None}
            query = Q["select_job"] if user_id is None else Q["select_user_job"]
            row = await self._fetch_one(connection, query, params)
            return None if row is None else job_from_row(row)

        return await self._run(work, write=False, single=True)

    async def update_jobs(
        self,
        changes: Sequence[tuple[str, Change]],
        limits: Limits,
        *,
        user_id: str | None = None,
    ) -> list[Job | JobdeskError]:
        params = {
            "ids": sorted({job_id for job_id, _ in changes}),
            "user_id": user_id,
            "now": self._now_param(),
        }
        # Optimistic first, without BEGIN and COMMIT: read the rows, decide, and write
        # in one statement only if no row changed in between (its version, xmin, is
        # the one read), moving the users' waiting counts with it; else, or for a retry
        # or a start (admitted under the user's row lock), do it all again under locks.
        read = partial(self._fetch_all, Q["select_jobs"], params)
        rows = await self._run(read, write=False, single=True)
        try:
            outcomes, written, events = await decide(changes, rows, needs_the_locked_path)
        except NeedsLock:
            return await self._run(partial(self._update_locked, changes, limits, params))
        if not written:
            return outcomes
        versions = {row["id"]: row["version"] for row in rows}
        users = [
            {"user_id": user_id, "waiting": move}
            for user_id, move in pending_moves(rows, written).items()
        ]
        write = Q["write_jobs"], write_params(written, events, versions, users)
        if await self._run(partial(self._fetch_value, *write), single=True):
            return outcomes
        return await self._run(partial(self._update_locked, changes, limits, params))

    async def _update_locked(
        self,
        changes: Sequence[tuple[str, Change]],
        limits: Limits,
        params: dict[str, Any],
        connection: Connection,
    ) -> list[Job | JobdeskError]:
        # Lock every row first, in id order, then their users and limited types, so two
        # batches never deadlock (jobdesk.claim_fair takes no lock it would wait for).
        rows = await self._fetch_all(Q["select_jobs_for_update"], params, connection)
        ledger = await self._ledger(connection, rows, limits)
        if ledger is None:
            return [JobNotFound(job_id) for job_id, _ in changes]
        outcomes, written, events = await decide(changes, rows, ledger.admit)
        if written:
            versions = {row["id"]: row["version"] for row in rows}
            parameters = write_params(
                written, events, versions, ledger.user_changes(), ledger.type_changes()
            )
            if not await self._fetch_value(Q["write_jobs"], parameters, connection):
                raise AssertionError("a locked job changed under its lock")  # pragma: no cover
        return outcomes

    async def list_jobs(
        self,
        user_id: str,
        *,
        statuses: tuple[JobStatus, ...] | None,
        types: frozenset[str] | None,
        project_id: str | None,
        before_id: str | None,
        limit: int,
    ) -> list[Job]:
        params = {
            "user_id": user_id,
            "before_id": before_id or ABOVE_EVERY_ID,
            "project_id": project_id,
            "statuses": None if statuses is None else [status.value for status in statuses],
            "types": types_param(types),
            "limit": limit,
        }

        async def work(connection: Connection) -> list[Job]:
            cursor = await connection.execute(Q["list_user_jobs"], params)
            return [job_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, write=False, single=True)

    async def list_jobs_changed_since(self, user_id: str, since: datetime, limit: int) -> list[Job]:
        params = {"user_id": user_id, "since": since, "limit": limit}

        async def work(connection: Connection) -> list[Job]:
            cursor = await connection.execute(Q["list_user_jobs_changed_since"], params)
            return [job_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, write=False, single=True)

    async def ping(self) -> None:
        async def work(connection: Connection) -> None:
            await self._fetch_one(connection, Q["ping"], {})

        await self._run(work, write=False, single=True)

    async def complete_and_claim(
        self,
        worker: Worker,
        completions: Sequence[Completion],
        types: frozenset[str] | None,
        limit: int,
        *,
        lease_seconds: float,
        limits: Limits,
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        ids = [completion.job_id for completion in completions]
        if len(set(ids)) != len(ids):
            # A job twice in one batch: the second must see the first's effect, as
            # update_jobs applies changes in order. Rare enough to take two transactions.
            in_order = await self.update_jobs(completion_changes(worker, completions), limits)
            claimed = await self.claim(worker, types, limit, lease_seconds, limits) if limit else []
            return in_order, claimed
        params = {
            "completions": json.dumps(
                [{"id": c.job_id, "attempt": c.attempt, "result": c.result} for c in completions]
            ),
            "ids": sorted(ids),
            "worker_id": worker.name,
            "worker_types": types_param(worker.types),
            "now": self._now_param(),
            "types": types_param(types),
            "limit": limit,
            "lease_seconds": lease_seconds,
            "default_max_running": limits.max_running_per_user,
        }
        rows = await self._run(
            lambda connection: self._fetch_all(Q["complete_and_claim"], params, connection),
            single=True,
        )
        outcomes: dict[str, Job | JobdeskError] = {
            row["id"]: job_from_row(row) for row in rows if row["completed"]
        }
        in_plan_order = sorted(
            (row for row in rows if not row["completed"]), key=lambda row: row["ordinality"]
        )
        started = [job_from_row(row) for row in in_plan_order]
        refused = [completion for completion in completions if completion.job_id not in outcomes]
        if refused:
            # Each one refused for its reason (LeaseLost, JobNotFound), as update_jobs says.
            answers = await self.update_jobs(completion_changes(worker, refused), limits)
            outcomes.update(zip((c.job_id for c in refused), answers, strict=True))
        return [outcomes[job_id] for job_id in ids], started

    async def requeue_expired(self, limits: Limits, batch_size: int) -> int:
        async def work(connection: Connection) -> int:
            cursor = await connection.execute(
                Q["expired_leases"], {"now": self._now_param(), "limit": batch_size}
            )
            rows = await cursor.fetchall()
            expired = [
                lifecycle.expire(job_from_row(row), row["store_now"], limits=limits) for row in rows
            ]
            if expired:
                versions = {row["id"]: row["version"] for row in rows}
                users = [
                    {"user_id": user_id, "waiting": move}
                    for user_id, move in pending_moves(rows, expired).items()
                ]
                write = Q["write_jobs"], write_params(expired, expired, versions, users)
                if not await self._fetch_value(*write, connection):
                    raise AssertionError("a locked job changed under its lock")  # pragma: no cover
            return len(expired)

        return await self._run(work)

    async def prune_finished(self, older_than: datetime, batch_size: int) -> int:
        async def work(connection: Connection) -> int:
            cursor = await connection.execute(
                Q["prune_finished"], {"older_than": older_than, "limit": batch_size}
            )
            return cursor.rowcount

        return await self._run(work)

    async def job_events(self, job_id: str) -> list[JobEvent]:
        async def work(connection: Connection) -> list[JobEvent]:
            cursor = await connection.execute(Q["select_events"], {"job_id": job_id})
            return [
                JobEvent(
                    job_id=row["job_id"],
                    at=row["at"],
                    status=JobStatus(row["status"]),
                    attempt=row["attempt"],
                    worker_id=row["worker_id"],
                    error=row["error"],
                )
                for row in await cursor.fetchall()
            ]

        return await self._run(work, write=False, single=True)

    # -- tokens and users -------------------------------------------------------------------

    async def insert_token(self, record: TokenRecord) -> None:
        async def work(connection: Connection) -> None:
            await connection.execute(
                Q["insert_token"],
                {
                    "key_id": record.key_id,
                    "kind": record.kind,
                    "subject": record.subject,
                    "secret_hash": record.secret_hash,
                    "types": types_param(record.types),
                    "created_at": record.created_at,
                    "expires_at": record.expires_at,
                },
            )

        try:
            await self._run(work)
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise InvalidInput(
                    "name",
                    f"a live {record.kind} token named {record.subject!r} exists; revoke it first",
                ) from None
            raise

    async def get_token(self, kind: str, key_id: str) -> TokenRecord | None:
        async def work(connection: Connection) -> TokenRecord | None:
            row = await self._fetch_one(
                connection, Q["select_token"], {"kind": kind, "key_id": key_id}
            )
            return None if row is None else token_from_row(row)

        return await self._run(work, write=False, single=True)

    async def revoke_tokens(self, kind: str, subject: str) -> int:
        async def work(connection: Connection) -> int:
            params = {"kind": kind, "subject": subject, "now": self._now_param()}
            cursor = await connection.execute(Q["revoke_tokens"], params)
            return cursor.rowcount

        return await self._run(work)

    async def list_tokens(self, kind: str) -> list[TokenRecord]:
        async def work(connection: Connection) -> list[TokenRecord]:
            cursor = await connection.execute(Q["list_tokens"], {"kind": kind})
            return [token_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, write=False)

    async def set_user_limits(self, user_id: str, user_limits: UserLimits) -> None:
        params = {
            "user_id": user_id,
            "max_running": user_limits.max_running,
            "max_waiting": user_limits.max_waiting,
            "max_daily": user_limits.max_daily,
            "weight": user_limits.weight,
        }

        async def work(connection: Connection) -> None:
            await connection.execute(Q["upsert_user_limits"], params)

        await self._run(work)

    async def user_usage(self, user_id: str, limits: Limits) -> UserUsage:
        async def work(connection: Connection) -> UserUsage:
            now_param = self._now_param()
            row = await self._fetch_one(
                connection, Q["select_user"], {"user_id": user_id, "now": now_param}
            )
            count = await self._fetch_one(connection, Q["count_running"], {"user_id": user_id})
            clock = await self._fetch_one(connection, Q["now"], {"now": now_param})
            assert count is not None
            assert clock is not None
            return usage(user_id, count["count"], row, limits, clock["coalesce"])

        return await self._run(work, write=False)

"""PostgresStore: many API processes and many workers on one PostgreSQL database.

psycopg 3 with a connection pool; no ORM. Read-modify-write operations lock the
rows they read (``FOR UPDATE``); a user's creates and retries are serialised by
the lock on that user's row in ``jobdesk.users``; claims are one statement with
``FOR UPDATE SKIP LOCKED``. Time is the database's ``now()`` unless a test
injects a clock. A trigger on ``jobdesk.jobs`` announces each committed change
with ``NOTIFY`` on the ``jobdesk_changes`` channel; one listening connection per
process feeds the process's :class:`~jobdesk.changes.ChangeHub` and comes back by
itself after the connection or the server goes away.

Connections are in autocommit: an operation of one statement (a read, a claim, a
create, which calls the ``jobdesk.create_job`` function) is one round trip that
commits by itself; the others run between ``BEGIN`` and ``COMMIT``.

A connection lost before COMMIT was sent leaves nothing applied, and the
operation is tried once more on a fresh connection. A connection lost during
COMMIT (or during a one-statement write) leaves the outcome unknown: that
surfaces as :class:`~jobdesk.errors.StoreUnavailable` saying so, except for a
create, which finds out by looking for its job's id and tries again if needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from jobdesk import lifecycle
from jobdesk.changes import RESYNC, ChangeHub, JobChange, Subscription
from jobdesk.errors import InvalidInput, JobdeskError, JobNotFound, RateLimited, StoreUnavailable
from jobdesk.ids import first_id_at
from jobdesk.limits import Limits, check_active, check_daily, usage
from jobdesk.models import (
    Completion,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    QueueCount,
    ThroughputMinute,
    TokenRecord,
    UserLimits,
    UserLoad,
    UserUsage,
    Worker,
    WorkerSeen,
)
from jobdesk.store import (
    ABOVE_EVERY_ID,
    FAILURE_STATUSES,
    Change,
    Clock,
    completion_changes,
    load_migrations,
    load_queries,
    throughput_minutes,
)

__all__ = ["PostgresStore"]

T = TypeVar("T")
Row = dict[str, Any]
Connection = psycopg.AsyncConnection[Row]
Q = load_queries("jobdesk.store", "postgres.sql")
CHANNEL = "jobdesk_changes"
#: the same notifications, only for jobs that became pending (migration 0006): workers'
READY_CHANNEL = "jobdesk_ready"
_MIGRATION_LOCK = 0x6A6F626465736B  # "jobdesk": one advisory lock id for every migrator
_POOL_OPTIONS = {"pool_min": 1, "pool_max": 10}
_log = logging.getLogger("jobdesk.store.postgres")
#: the largest value of an ``integer`` column
_MAX_INT = 2**31 - 1


def job_from_row(row: Row) -> Job:
    """The one place a row becomes a :class:`Job`."""
    return Job(
        id=row["id"],
        user_id=row["user_id"],
        project_id=row["project_id"],
        type=row["type"],
        status=JobStatus(row["status"]),
        input=row["input"],
        result=row["result"],
        error=row["error"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        priority=row["priority"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        attempt_offset=row["attempt_offset"],
        created_at=row["created_at"],
        run_at=row["run_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        worker_id=row["worker_id"],
        lease_expires_at=row["lease_expires_at"],
        cancel_requested=row["cancel_requested"],
        idempotency_key=row["idempotency_key"],
    )


class _NeedsLock(Exception):
    """An optimistic update met a change that must run under the user's row lock."""


async def _needs_the_locked_path(job: Job) -> None:
    raise _NeedsLock(job.id)


async def _decide(
    changes: Sequence[tuple[str, Change]],
    rows: Sequence[Row],
    admit: Callable[[Job], Awaitable[None]],
) -> tuple[list[Job | JobdeskError], list[Job], list[Job]]:
    """Apply each change, in order, to the jobs of ``rows``: every outcome, the jobs to
    write and their status changes (history). ``admit`` checks a job that becomes active
    again against its user's active limit."""
    current = {row["id"]: job_from_row(row) for row in rows}
    now: datetime | None = rows[0]["store_now"] if rows else None
    outcomes: list[Job | JobdeskError] = []
    written: dict[str, Job] = {}
    events: list[Job] = []
    for job_id, change in changes:
        before = current.get(job_id)
        try:
            if before is None or now is None:
                raise JobNotFound(job_id)
            after = change(before, now)
            if after is not before and after.status.is_active and not before.status.is_active:
                await admit(before)
        except JobdeskError as refusal:
            outcomes.append(refusal)
            continue
        outcomes.append(after)
        if after is not before:
            current[job_id] = written[job_id] = after
            if after.status is not before.status:
                events.append(after)
    return outcomes, list(written.values()), events


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _write_params(
    written: Sequence[Job], events: Sequence[Job], versions: dict[str, str]
) -> dict[str, Any]:
    """``write_jobs``'s parameters: the jobs' new states, each with the version (xmin) of
    the row it was decided from, and their history entries, as JSON."""
    jobs = [
        {
            "id": job.id,
            "version": versions[job.id],
            "status": job.status.value,
            "result": job.result,
            "error": job.error,
            "progress": job.progress,
            "progress_message": job.progress_message,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "attempt_offset": job.attempt_offset,
            "run_at": _time(job.run_at),
            "started_at": _time(job.started_at),
            "finished_at": _time(job.finished_at),
            "updated_at": _time(job.updated_at),
            "worker_id": job.worker_id,
            "lease_expires_at": _time(job.lease_expires_at),
            "cancel_requested": job.cancel_requested,
        }
        for job in written
    ]
    history = [
        {
            "job_id": job.id,
            "at": _time(job.updated_at),
            "status": job.status.value,
            "attempt": job.attempt,
            "worker_id": job.worker_id,
            "error": job.error if job.status in FAILURE_STATUSES else None,
        }
        for job in events
    ]
    return {
        "ids": [job.id for job in written],
        "jobs": json.dumps(jobs),
        "events": json.dumps(history),
    }


def _judge_limits(row: Row, limits: Limits) -> None:
    """Raise the refusal :mod:`jobdesk.limits` makes of the numbers ``jobdesk.create_job``
    judged by; if the function decided otherwise, the two copies of the rule have drifted."""
    active_limit, daily_limit = limits.for_user(UserLimits(row["max_active"], row["max_daily"]))
    try:
        check_daily(row["created_today"], daily_limit, row["store_now"])
        check_active(row["active"], active_limit)
    except RateLimited:
        if not row["created"]:
            raise
        allowed = False
    else:
        allowed = True
    if allowed != row["created"]:
        raise RuntimeError(
            "jobdesk.create_job (PostgreSQL migration 0004) and jobdesk.limits disagree on "
            f"a create with {dict(row)}: bring the function in line with jobdesk.limits"
        )


def _check_still_open(connection: Connection) -> None:
    """Read what the server sent a pooled connection while it was idle, without a round trip.

    A connection the server closed (restart, ``pg_terminate_backend``) fails here,
    before anything was sent, so the operation can safely be tried again.
    """
    connection.pgconn.consume_input()
    if connection.pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError("the server closed the connection")


def _change_from_payload(payload: str) -> JobChange:
    data = json.loads(payload)
    return JobChange(
        job_id=data["id"],
        user_id=data["user_id"],
        type=data["type"],
        status=JobStatus(data["status"]),
        progress=data["progress"],
        progress_message=data["message"],
        attempt=data["attempt"],
        updated_at=datetime.fromisoformat(data["at"]),
    )


def _types_param(types: frozenset[str] | None) -> list[str] | None:
    return None if types is None else sorted(types)


def _token_from_row(row: Row) -> TokenRecord:
    return TokenRecord(
        key_id=row["key_id"],
        kind=row["kind"],
        subject=row["subject"],
        secret_hash=bytes(row["secret_hash"]),
        types=None if row["types"] is None else frozenset(row["types"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def migrations() -> list[tuple[int, str]]:
    """``(version, script)`` of every PostgreSQL migration, in order."""
    return load_migrations("postgres")


class _Channel:
    """One LISTEN channel: a connection of its own, resumed after it breaks, and a hub
    that fans its notifications out to this process's subscribers."""

    def __init__(self, conninfo: str, name: str) -> None:
        self._conninfo = conninfo
        self._name = name
        self.hub = ChangeHub()
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A subscription to this channel; starts listening if needed."""
        if self._listener is None or self._listener.done():
            self._listening.clear()
            self._listener = asyncio.create_task(self._listen(), name=f"{self._name}-listener")
        async with self.hub.subscribe() as subscription:
            with contextlib.suppress(TimeoutError):
                # Changes committed before LISTEN took effect would be missed; the first
                # subscriber waits (briefly) until it has.
                await asyncio.wait_for(self._listening.wait(), timeout=5)
            yield subscription

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {self._name}")
                    self._listening.set()
                    # Anything committed while we were away was not heard: say so.
                    self.hub.publish(RESYNC)
                    delay = 0.1
                    async for notification in connection.notifies():
                        try:
                            self.hub.publish(_change_from_payload(notification.payload))
                        except (ValueError, KeyError) as exc:
                            _log.warning("ignoring a malformed notification: %s", exc)
            except psycopg.Error as exc:
                self._listening.clear()
                _log.warning("listening connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None


class PostgresStore:
    """The :class:`~jobdesk.store.Store` on PostgreSQL (``postgresql://user@host/db``)."""

    def __init__(
        self,
        conninfo: str,
        *,
        clock: Clock | None = None,
        pool_min: int = 1,
        pool_max: int = 10,
    ) -> None:
        self.conninfo = conninfo
        self._clock = clock
        self._pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            conninfo,
            connection_class=Connection,
            min_size=pool_min,
            max_size=pool_max,
            kwargs={"row_factory": dict_row, "options": "-c timezone=UTC", "autocommit": True},
            open=False,
        )
        self._secret = b""
        self._changes = _Channel(conninfo, CHANNEL)
        self._ready = _Channel(conninfo, READY_CHANNEL)
        #: where this process's subscribers to every change get them
        self.hub = self._changes.hub

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> PostgresStore:
        """``postgresql://user:password@host:port/database?pool_min=1&pool_max=10``.

        ``pool_min``/``pool_max`` size this process's connection pool; every other
        query option is passed to libpq (``sslmode``, ``connect_timeout``...).
        """
        parts = urlsplit(url)
        if parts.scheme not in {"postgresql", "postgres"}:
            raise InvalidInput("url", "must look like postgresql://user@host:5432/database")
        options: dict[str, int] = {}
        passed: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query):
            if key in _POOL_OPTIONS:
                try:
                    options[key] = int(value)
                except ValueError:
                    raise InvalidInput("url", f"{key} must be an integer") from None
            else:
                passed.append((key, value))
        pool_min = options.get("pool_min", _POOL_OPTIONS["pool_min"])
        pool_max = options.get("pool_max", max(pool_min, _POOL_OPTIONS["pool_max"]))
        if not 0 <= pool_min <= pool_max or pool_max < 1:
            raise InvalidInput(
                "url", "pool sizes must satisfy 0 <= pool_min <= pool_max, 1 <= pool_max"
            )
        conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(passed)))
        return cls(conninfo, clock=clock, pool_min=pool_min, pool_max=pool_max)

    # -- plumbing ---------------------------------------------------------------------------

    def _now_param(self) -> datetime | None:
        return None if self._clock is None else self._clock()

    async def _run(
        self,
        work: Callable[[Connection], Awaitable[T]],
        *,
        write: bool = True,
        single: bool = False,
        done: Callable[[Connection], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``work`` in one transaction; once more if the connection broke before COMMIT.

        ``single``: ``work`` runs one statement, which commits by itself (autocommit),
        saving the round trips of ``BEGIN`` and ``COMMIT``; a one-statement write that
        broke has an unknown outcome, unless ``done`` tells, on a fresh connection,
        whether it took effect (its result) or not (``None``: ``work`` runs again).
        """
        retried = False
        for try_number in (1, 2):
            committing = False
            try:
                # No pipeline mode: measured here it cost more client time than the round
                # trips it saved, and a connection lost mid-pipeline left psycopg's
                # pipeline to be finalised later, noisily.
                async with self._pool.connection() as connection:
                    _check_still_open(connection)
                    if retried and done is not None:
                        settled = await done(connection)
                        if settled is not None:
                            return settled
                    if single:
                        committing = write and done is None
                        return await work(connection)
                    async with connection.transaction():
                        result = await work(connection)
                        committing = write
                    return result
            except JobdeskError:
                raise
            except psycopg.OperationalError as exc:
                if committing:
                    raise StoreUnavailable(
                        "the connection to PostgreSQL broke while committing, so the outcome "
                        "is unknown: read the job back before trying again",
                        outcome_unknown=True,
                    ) from exc
                if try_number == 2:
                    raise StoreUnavailable(f"PostgreSQL is unreachable: {exc}") from exc
                _log.warning("PostgreSQL connection lost before commit; trying once more: %s", exc)
                retried = True
                # After a server restart every pooled connection is dead: drop them all
                # so the second try gets a fresh one.
                with contextlib.suppress(psycopg.Error, PoolTimeout):
                    await self._pool.check()
            except psycopg.Error as exc:
                raise StoreUnavailable(f"PostgreSQL refused the operation: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch_one(
        self, connection: Connection, query: str, params: dict[str, Any]
    ) -> Row | None:
        cursor = await connection.execute(query, params)
        return await cursor.fetchone()

    async def open(self) -> None:
        """Open the pool and apply pending migrations (one process at a time)."""
        try:
            await self._pool.open(wait=True, timeout=30)
        except (psycopg.Error, PoolTimeout) as exc:
            await self._pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self._safe_url()}") from exc
        await self._run(self._migrate)
        self._secret = await self._run(self._read_secret, write=False)

    def _safe_url(self) -> str:
        parts = urlsplit(self.conninfo)
        host = parts.hostname or "localhost"
        return f"{host}:{parts.port or 5432}{parts.path}"

    async def _migrate(self, connection: Connection) -> None:
        # The advisory lock makes concurrent starters apply each migration exactly once.
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await connection.execute("CREATE SCHEMA IF NOT EXISTS jobdesk")
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS jobdesk.migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await connection.execute("SELECT version FROM jobdesk.migrations")
        applied = {row["version"] for row in await cursor.fetchall()}
        for version, script in migrations():
            if version not in applied:
                await connection.execute(script.encode())
                await connection.execute(
                    "INSERT INTO jobdesk.migrations (version) VALUES (%s)", (version,)
                )
        await connection.execute(
            "INSERT INTO jobdesk.meta (key, value) VALUES ('secret', %s) ON CONFLICT DO NOTHING",
            (secrets.token_bytes(32),),
        )

    async def _read_secret(self, connection: Connection) -> bytes:
        row = await self._fetch_one(connection, Q["select_secret"], {})
        assert row is not None
        return bytes(row["value"])

    async def close(self) -> None:
        """Stop listening and close every connection."""
        await self._changes.close()
        await self._ready.close()
        await self._pool.close()

    async def now(self) -> datetime:
        """The database's ``now()`` (or the injected clock)."""

        async def work(connection: Connection) -> datetime:
            row = await self._fetch_one(connection, Q["now"], {"now": self._now_param()})
            assert row is not None
            value: datetime = row["coalesce"]
            return value

        return await self._run(work, write=False, single=True)

    async def secret(self) -> bytes:
        """The random secret stored by the first start."""
        return self._secret

    # -- change notifications ---------------------------------------------------------------

    def subscribe(self, *, ready_only: bool = False) -> AbstractAsyncContextManager[Subscription]:
        """Changes made by every process, as NOTIFY delivers them; starts listening if needed.

        ``ready_only`` listens only for jobs that became pending (a channel of their own):
        a worker's process then reads one notification per job, not one per change.
        """
        return (self._ready if ready_only else self._changes).subscribe()

    # -- jobs -------------------------------------------------------------------------------

    async def _check_active(self, connection: Connection, user_id: str, limits: Limits) -> None:
        row = await self._fetch_one(connection, Q["lock_user"], {"user_id": user_id})
        assert row is not None
        max_active, _ = limits.for_user(UserLimits(row["max_active"], row["max_daily"]))
        count = await self._fetch_one(connection, Q["count_active"], {"user_id": user_id})
        assert count is not None
        check_active(count["count"], max_active)

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
            "default_max_active": limits.max_active_per_user,
            "default_max_daily": limits.max_created_per_day,
        }

        async def work(connection: Connection) -> tuple[Job, bool]:
            if spec.idempotency_key is not None:
                row = await self._fetch_one(connection, Q["select_job_by_idempotency_key"], params)
                if row is not None:
                    return lifecycle.replay(job_from_row(row), spec), False
            # One round trip: the function locks the user's row, counts, and stores the
            # job only if the limits leave room (migration 0004).
            row = await self._fetch_one(connection, Q["create_job"], params)
            assert row is not None
            _judge_limits(row, limits)
            return lifecycle.create(spec, row["store_now"]), True

        async def done(connection: Connection) -> tuple[Job, bool] | None:
            # The job's id is made here, once: if a create whose connection broke had
            # committed, its job is there.
            row = await self._fetch_one(connection, Q["select_job"], {"id": spec.id, "now": None})
            return None if row is None else (job_from_row(row), True)

        try:
            return await self._run(work, single=True, done=done)
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, psycopg.errors.UniqueViolation):
                if cause.diag.constraint_name != "jobs_pkey":
                    # Two creates with one idempotency key raced: the other committed first.
                    return await self._run(work, single=True, done=done)
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
            active = await self._fetch_one(connection, Q["count_active"], {"user_id": user_id})
            assert active is not None
            current = usage(user_id, active["count"], user, limits, now)
            # As if the batch's last job were the next create, after the others.
            check_daily(current.created_today + len(specs) - 1, current.max_daily, now)
            check_active(current.active + len(specs) - 1, current.max_active)
            jobs = [lifecycle.create(spec, now) for spec in specs]
            rows = [
                {
                    "id": job.id,
                    "user_id": job.user_id,
                    "project_id": job.project_id,
                    "type": job.type,
                    "input": job.input,
                    "priority": job.priority,
                    "max_attempts": job.max_attempts,
                    "created_at": _time(job.created_at),
                    "run_at": _time(job.run_at),
                }
                for job in jobs
            ]
            await connection.execute(Q["insert_jobs"], {"jobs": json.dumps(rows)})
            await connection.execute(
                Q["count_created"],
                {
                    "user_id": user_id,
                    "day": now.astimezone(UTC).date(),
                    "count": current.created_today + len(specs),
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
        # the one read); else, or for a retry (which must hold the user's row lock),
        # do it all again under locks.
        read = partial(self._fetch_all, Q["select_jobs"], params)
        rows = await self._run(read, write=False, single=True)
        try:
            outcomes, written, events = await _decide(changes, rows, _needs_the_locked_path)
        except _NeedsLock:
            return await self._run(partial(self._update_locked, changes, limits, params))
        if not written:
            return outcomes
        versions = {row["id"]: row["version"] for row in rows}
        write = Q["write_jobs"], _write_params(written, events, versions)
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
        # Lock every row first, in id order, so two batches never deadlock.
        rows = await self._fetch_all(Q["select_jobs_for_update"], params, connection)

        async def admit(job: Job) -> None:
            await self._check_active(connection, job.user_id, limits)

        outcomes, written, events = await _decide(changes, rows, admit)
        if written:
            versions = {row["id"]: row["version"] for row in rows}
            write = Q["write_jobs"], _write_params(written, events, versions)
            if not await self._fetch_value(*write, connection):
                raise AssertionError("a locked job changed under its lock")  # pragma: no cover
        return outcomes

    async def _fetch_all(
        self, query: str, params: dict[str, Any], connection: Connection
    ) -> list[Row]:
        cursor = await connection.execute(query, params)
        return await cursor.fetchall()

    async def _fetch_value(self, query: str, params: dict[str, Any], connection: Connection) -> Any:
        cursor = await connection.execute(query, params)
        row = await cursor.fetchone()
        assert row is not None
        return next(iter(row.values()))

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
            "types": _types_param(types),
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

    async def ready_jobs(self, types: frozenset[str] | None, limit: int) -> list[Job]:
        async def work(connection: Connection) -> list[Job]:
            params = {"now": self._now_param(), "types": _types_param(types), "limit": limit}
            cursor = await connection.execute(Q["ready_jobs"], params)
            return [job_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, write=False, single=True)

    async def claim(
        self, worker: Worker, types: frozenset[str] | None, limit: int, lease_seconds: float
    ) -> list[Job]:
        async def work(connection: Connection) -> list[Job]:
            params = {
                "now": self._now_param(),
                "types": _types_param(types),
                "limit": limit,
                "worker_id": worker.name,
                "lease_seconds": lease_seconds,
            }
            cursor = await connection.execute(Q["claim"], params)
            return [job_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, single=True)

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
        # An attempt past the integer column cannot be held: update_jobs refuses it.
        held = [completion for completion in completions if completion.attempt <= _MAX_INT]
        if len(set(ids)) != len(ids):
            # A job twice in one batch: the second must see the first's effect, as
            # update_jobs applies changes in order. Rare enough to take two transactions.
            in_order = await self.update_jobs(completion_changes(worker, completions), limits)
            return in_order, await self.claim(worker, types, limit, lease_seconds) if limit else []
        params = {
            "completions": json.dumps(
                [{"id": c.job_id, "attempt": c.attempt, "result": c.result} for c in held]
            ),
            "ids": sorted(c.job_id for c in held),
            "worker_id": worker.name,
            "worker_types": _types_param(worker.types),
            "now": self._now_param(),
            "types": _types_param(types),
            "limit": limit,
            "lease_seconds": lease_seconds,
        }
        rows = await self._run(
            partial(self._fetch_all, Q["complete_and_claim"], params), single=True
        )
        outcomes: dict[str, Job | JobdeskError] = {
            row["id"]: job_from_row(row) for row in rows if row["completed"]
        }
        started = sorted(
            (job_from_row(row) for row in rows if not row["completed"]),
            key=lambda job: (-job.priority, job.id),
        )
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
                write = Q["write_jobs"], _write_params(expired, expired, versions)
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

    async def queue_stats(self, since: datetime) -> tuple[list[QueueCount], list[WorkerSeen]]:
        async def work(connection: Connection) -> tuple[list[QueueCount], list[WorkerSeen]]:
            cursor = await connection.execute(Q["stats_counts"], {"since": since})
            counts = [
                QueueCount(row["type"], JobStatus(row["status"]), row["count"])
                for row in await cursor.fetchall()
            ]
            cursor = await connection.execute(Q["stats_workers"], {"since": since})
            workers = [
                WorkerSeen(row["worker_id"], row["processing"], row["last_seen"])
                for row in await cursor.fetchall()
            ]
            return counts, workers

        return await self._run(work, write=False)

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
                    "types": _types_param(record.types),
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
            return None if row is None else _token_from_row(row)

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
            return [_token_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, write=False)

    async def set_user_limits(self, user_id: str, user_limits: UserLimits) -> None:
        params = {
            "user_id": user_id,
            "max_active": user_limits.max_active,
            "max_daily": user_limits.max_daily,
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
            count = await self._fetch_one(connection, Q["count_active"], {"user_id": user_id})
            clock = await self._fetch_one(connection, Q["now"], {"now": now_param})
            assert count is not None
            assert clock is not None
            return usage(user_id, count["count"], row, limits, clock["coalesce"])

        return await self._run(work, write=False)

    # -- for operators ----------------------------------------------------------------------

    async def throughput(self, since: datetime) -> list[ThroughputMinute]:
        params = {"since": since, "since_id": first_id_at(since)}

        async def work(connection: Connection) -> list[ThroughputMinute]:
            cursor = await connection.execute(Q["throughput"], params)
            rows = await cursor.fetchall()
            return throughput_minutes([(row["minute"], row["kind"], row["count"]) for row in rows])

        return await self._run(work, write=False)

    async def oldest_pending(self) -> datetime | None:
        async def work(connection: Connection) -> datetime | None:
            row = await self._fetch_one(connection, Q["oldest_pending"], {})
            return None if row is None else row["oldest"]

        return await self._run(work, write=False)

    async def failed_jobs(self, since: datetime, limit: int) -> list[Job]:
        async def work(connection: Connection) -> list[Job]:
            cursor = await connection.execute(Q["failed_jobs"], {"since": since, "limit": limit})
            return [job_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, write=False)

    async def top_users(self, now: datetime, limit: int) -> list[UserLoad]:
        params = {"day": now.astimezone(UTC).date(), "limit": limit}

        async def work(connection: Connection) -> list[UserLoad]:
            cursor = await connection.execute(Q["top_users"], params)
            return [
                UserLoad(row["user_id"], row["active"], row["created_today"])
                for row in await cursor.fetchall()
            ]

        return await self._run(work, write=False)

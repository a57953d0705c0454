"""SQLiteStore: the embedded default, one file, one machine, zero set-up.

One connection per store, used from one dedicated thread, so each operation
costs one thread hop however many statements it runs. The database is in WAL
mode; every read-modify-write runs under ``BEGIN IMMEDIATE``, which takes the
database's single write lock first and so serialises it against every other
writer, in this process or another. That is what makes the limits atomic here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from jobdesk import lifecycle
from jobdesk.changes import RESYNC, ChangeHub, Subscription
from jobdesk.errors import InvalidInput, JobdeskError, JobNotFound, StoreUnavailable
from jobdesk.ids import first_id_at
from jobdesk.limits import Limits, check_active, check_daily, usage, usage_day
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
    system_clock,
    throughput_minutes,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")
Q = load_queries("jobdesk.store", "sqlite.sql")
_SYNCHRONOUS = {"full", "normal", "extra", "off"}
_WATCH_SECONDS = 0.01


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _types_param(types: frozenset[str] | None) -> str | None:
    return None if types is None else json.dumps(sorted(types))


def job_from_row(row: sqlite3.Row) -> Job:
    """The one place a row becomes a :class:`Job`."""
    return Job(
        id=row["id"],
        user_id=row["user_id"],
        project_id=row["project_id"],
        type=row["type"],
        status=JobStatus(row["status"]),
        input=json.loads(row["input"]),
        result=_json_value(row["result"]),
        error=_json_value(row["error"]),
        progress=row["progress"],
        progress_message=row["progress_message"],
        priority=row["priority"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        attempt_offset=row["attempt_offset"],
        created_at=datetime.fromisoformat(row["created_at"]),
        run_at=datetime.fromisoformat(row["run_at"]),
        started_at=_dt(row["started_at"]),
        finished_at=_dt(row["finished_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        worker_id=row["worker_id"],
        lease_expires_at=_dt(row["lease_expires_at"]),
        cancel_requested=bool(row["cancel_requested"]),
        idempotency_key=row["idempotency_key"],
    )


def _job_params(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status.value,
        "result": _json_text(job.result),
        "error": _json_text(job.error),
        "progress": job.progress,
        "progress_message": job.progress_message,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "attempt_offset": job.attempt_offset,
        "run_at": _ts(job.run_at),
        "started_at": _ts(job.started_at),
        "finished_at": _ts(job.finished_at),
        "updated_at": _ts(job.updated_at),
        "worker_id": job.worker_id,
        "lease_expires_at": _ts(job.lease_expires_at),
        "cancel_requested": int(job.cancel_requested),
    }


def _event_params(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "at": _ts(job.updated_at),
        "status": job.status.value,
        "attempt": job.attempt,
        "worker_id": job.worker_id,
        "error": _json_text(job.error) if job.status in FAILURE_STATUSES else None,
    }


def _token_from_row(row: sqlite3.Row) -> TokenRecord:
    types = _json_value(row["types"])
    return TokenRecord(
        key_id=row["key_id"],
        kind=row["kind"],
        subject=row["subject"],
        secret_hash=bytes(row["secret_hash"]),
        types=None if types is None else frozenset(types),
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=_dt(row["expires_at"]),
        revoked_at=_dt(row["revoked_at"]),
    )


def _statements(script: str) -> list[str]:
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]}")
    return statements


def migrations() -> list[tuple[int, str]]:
    """``(version, script)`` of every SQLite migration, in order."""
    return load_migrations("sqlite")


def _data_version(connection: sqlite3.Connection) -> int:
    """SQLite's counter of commits made by *other* connections to this file."""
    (version,) = connection.execute("PRAGMA data_version").fetchone()
    return int(version)


class SQLiteStore:
    """The :class:`~jobdesk.store.Store` on an SQLite file (``sqlite:///path.db``)."""

    def __init__(
        self,
        path: str,
        *,
        clock: Clock | None = None,
        synchronous: str = "full",
        busy_timeout: float = 10.0,
    ) -> None:
        if synchronous.lower() not in _SYNCHRONOUS:
            raise InvalidInput("synchronous", f"must be one of {sorted(_SYNCHRONOUS)}")
        self.path = path
        self._clock = clock or system_clock
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._secret = b""
        self.hub = ChangeHub()
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> SQLiteStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite:///:memory:``.

        Query options: ``synchronous`` (``full``, the default, makes every
        acknowledged write survive a power cut; ``normal`` survives a process crash
        only) and ``busy_timeout`` in seconds.
        """
        if not url.startswith("sqlite:///"):
            raise InvalidInput("url", "must look like sqlite:///path/to/jobdesk.db")
        path, _, query = url[len("sqlite:///") :].partition("?")
        if not path:
            raise InvalidInput("url", "must name a file: sqlite:///path/to/jobdesk.db")
        options: dict[str, str] = {}
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            options[key] = value
        unknown = set(options) - {"synchronous", "busy_timeout"}
        if unknown:
            raise InvalidInput(
                "url", f"unknown options {sorted(unknown)}; allowed: synchronous, busy_timeout"
            )
        try:
            busy_timeout = float(options.get("busy_timeout", "10"))
        except ValueError:
            busy_timeout = -1.0
        if not 0 <= busy_timeout < 3600:
            raise InvalidInput("url", "busy_timeout must be a number of seconds from 0 to 3600")
        return cls(
            path,
            clock=clock,
            synchronous=options.get("synchronous", "full"),
            busy_timeout=busy_timeout,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
            check_same_thread=False,  # only ever used from self._executor's one thread
        )
        connection.row_factory = sqlite3.Row
        try:
            # Switching a new file to WAL needs an exclusive lock that the busy timeout
            # does not always wait for; a file already in WAL needs nothing.
            self._retry_when_locked(lambda: self._enable_wal(connection))
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")  # allow-listed
            connection.execute("PRAGMA foreign_keys = ON")
            self._retry_when_locked(lambda: self._migrate(connection))
            (self._secret,) = connection.execute(Q["select_secret"]).fetchone()
        except BaseException:
            connection.close()
            raise
        return connection

    @staticmethod
    def _enable_wal(connection: sqlite3.Connection) -> None:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            connection.execute("PRAGMA journal_mode = WAL")

    def _retry_when_locked(self, step: Callable[[], None]) -> None:
        # Many processes opening one new file at once can see "database is locked"
        # sooner than the busy timeout; opening is idempotent, so try again a while.
        deadline = time.monotonic() + max(self._busy_timeout, 1.0) * 3
        delay = 0.01
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)  # the store's own thread, before it serves anything
                delay = min(delay * 2, 0.5)

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE first, then read the version: two processes opening one new
        # file at once apply each migration exactly once.
        connection.execute("BEGIN IMMEDIATE")
        try:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            for number, script in migrations():
                if number > version:
                    for statement in _statements(script):
                        connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {int(number)}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._connection is None:
            raise StoreUnavailable("the store is not open: use JobDesk.open(...) first")
        connection = self._connection
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work, connection)
        except JobdeskError:
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite database {self.path!r}: {exc}") from exc

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def transaction(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        return await self._run(transaction)

    async def open(self) -> None:
        """Open the file (creating it), set WAL, and apply pending migrations."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobdesk-sqlite")
        loop = asyncio.get_running_loop()
        try:
            self._connection = await loop.run_in_executor(self._executor, self._connect)
        except sqlite3.Error as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise StoreUnavailable(f"cannot open SQLite database {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection and stop the store's thread."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        executor, connection = self._executor, self._connection
        self._executor, self._connection = None, None
        if executor is None:
            return
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        executor.shutdown(wait=True)

    async def now(self) -> datetime:
        """This machine's clock (or the injected one): SQLite runs on one machine."""
        return self._clock()

    async def secret(self) -> bytes:
        """The random secret made by the first migration."""
        return bytes(self._secret)

    @contextlib.asynccontextmanager
    async def subscribe(self, *, ready_only: bool = False) -> AsyncIterator[Subscription]:
        """Changes: this store's own as they commit; other processes' as ``RESYNC``.

        ``ready_only`` changes nothing here: every change comes (in process, they cost
        little), among them the jobs that became pending.

        While anyone is subscribed, the store checks ``PRAGMA data_version`` every
        10 ms; it moves only when another connection (another process, say a worker)
        committed, and then subscribers get :data:`~jobdesk.changes.RESYNC` and re-read.
        """
        async with self.hub.subscribe() as subscription:
            if self._watcher is None or self._watcher.done():
                # The baseline is read before the subscriber gets control, so a commit
                # made by another connection right after subscribing is never missed.
                last = await self._run(_data_version)
                if self._watcher is None or self._watcher.done():  # still, after the await
                    self._watcher = asyncio.create_task(
                        self._watch(last), name="jobdesk-sqlite-watch"
                    )
            yield subscription

    async def _watch(self, last: int) -> None:
        try:
            while self.hub.subscriber_count:
                await asyncio.sleep(_WATCH_SECONDS)
                version = await self._run(_data_version)
                if version != last:
                    last = version
                    self.hub.publish(RESYNC)
        except StoreUnavailable:
            return  # the store closed

    # -- jobs -------------------------------------------------------------------------------

    def _check_active(self, connection: sqlite3.Connection, user_id: str, limits: Limits) -> None:
        row = connection.execute(Q["select_user"], {"user_id": user_id}).fetchone()
        overrides = None if row is None else UserLimits(row["max_active"], row["max_daily"])
        max_active, _ = limits.for_user(overrides)
        (active,) = connection.execute(Q["count_active"], {"user_id": user_id}).fetchone()
        check_active(active, max_active)

    async def insert_job(self, spec: NewJob, limits: Limits) -> tuple[Job, bool]:
        def work(connection: sqlite3.Connection) -> tuple[Job, bool]:
            now = self._clock()
            if spec.idempotency_key is not None:
                row = connection.execute(
                    Q["select_job_by_idempotency_key"],
                    {"user_id": spec.user_id, "idempotency_key": spec.idempotency_key},
                ).fetchone()
                if row is not None:
                    return lifecycle.replay(job_from_row(row), spec), False
            self._admit(connection, spec.user_id, 1, limits, now)
            job = lifecycle.create(spec, now)
            self._insert(connection, [(job, spec.input_json)])
            return job, True

        job, created = await self._write(work)
        if created:
            self.hub.publish_jobs([job])
        return job, created

    async def insert_jobs(self, specs: Sequence[NewJob], limits: Limits) -> list[Job]:
        def work(connection: sqlite3.Connection) -> list[Job]:
            now = self._clock()
            self._admit(connection, specs[0].user_id, len(specs), limits, now)
            jobs = [lifecycle.create(spec, now) for spec in specs]
            self._insert(
                connection, [(job, spec.input_json) for job, spec in zip(jobs, specs, strict=True)]
            )
            return jobs

        jobs = await self._write(work)
        self.hub.publish_jobs(jobs)
        return jobs

    @staticmethod
    def _admit(
        connection: sqlite3.Connection, user_id: str, count: int, limits: Limits, now: datetime
    ) -> None:
        """Count ``count`` creates for ``user_id`` today, or refuse them by the limits."""
        max_active, max_daily, created_today = connection.execute(
            Q["count_created_today"], {"user_id": user_id, "day": usage_day(now), "n": count}
        ).fetchone()
        active_limit, daily_limit = limits.for_user(UserLimits(max_active, max_daily))
        # As if the batch's last job were the next create, after the others.
        check_daily(created_today - 1, daily_limit, now)
        (active,) = connection.execute(Q["count_active"], {"user_id": user_id}).fetchone()
        check_active(active + count - 1, active_limit)

    @staticmethod
    def _insert(connection: sqlite3.Connection, jobs: list[tuple[Job, str]]) -> None:
        """Write new jobs (each with its input's JSON) and their first history entries."""
        connection.executemany(
            Q["insert_job"],
            [
                {
                    "id": job.id,
                    "user_id": job.user_id,
                    "project_id": job.project_id,
                    "type": job.type,
                    "status": job.status.value,
                    "input": input_json,
                    "priority": job.priority,
                    "max_attempts": job.max_attempts,
                    "created_at": _ts(job.created_at),
                    "run_at": _ts(job.run_at),
                    "updated_at": _ts(job.updated_at),
                    "idempotency_key": job.idempotency_key,
                }
                for job, input_json in jobs
            ],
        )
        connection.executemany(Q["insert_event"], [_event_params(job) for job, _ in jobs])

    async def get_job(self, job_id: str, user_id: str | None = None) -> Job | None:
        def work(connection: sqlite3.Connection) -> Job | None:
            if user_id is None:
                row = connection.execute(Q["select_job"], {"id": job_id}).fetchone()
            else:
                row = connection.execute(
                    Q["select_user_job"], {"id": job_id, "user_id": user_id}
                ).fetchone()
            return None if row is None else job_from_row(row)

        return await self._run(work)

    def _apply(
        self,
        connection: sqlite3.Connection,
        job_id: str,
        change: Change,
        *,
        limits: Limits,
        user_id: str | None,
        now: datetime,
    ) -> tuple[Job, bool]:
        if user_id is None:
            row = connection.execute(Q["select_job"], {"id": job_id}).fetchone()
        else:
            row = connection.execute(
                Q["select_user_job"], {"id": job_id, "user_id": user_id}
            ).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        before = job_from_row(row)
        after = change(before, now)
        if after is before:
            return before, False
        if after.status.is_active and not before.status.is_active:
            self._check_active(connection, before.user_id, limits)
        connection.execute(Q["update_job"], _job_params(after))
        if after.status is not before.status:
            connection.execute(Q["insert_event"], _event_params(after))
        return after, True

    def _update_work(
        self, changes: Sequence[tuple[str, Change]], limits: Limits, user_id: str | None
    ) -> Callable[[sqlite3.Connection], tuple[list[Job | JobdeskError], list[Job]]]:
        def work(connection: sqlite3.Connection) -> tuple[list[Job | JobdeskError], list[Job]]:
            now = self._clock()
            outcomes: list[Job | JobdeskError] = []
            written: list[Job] = []
            for job_id, change in changes:
                try:
                    job, changed = self._apply(
                        connection, job_id, change, limits=limits, user_id=user_id, now=now
                    )
                except JobdeskError as refusal:
                    outcomes.append(refusal)
                    continue
                outcomes.append(job)
                if changed:
                    written.append(job)
            return outcomes, written

        return work

    async def update_jobs(
        self,
        changes: Sequence[tuple[str, Change]],
        limits: Limits,
        *,
        user_id: str | None = None,
    ) -> list[Job | JobdeskError]:
        outcomes, written = await self._write(self._update_work(changes, limits, user_id))
        self.hub.publish_jobs(written)
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
        params: dict[str, object] = {
            "user_id": user_id,
            "before_id": before_id or ABOVE_EVERY_ID,
            "project_id": project_id,
            "types": _types_param(types),
            "limit": limit,
        }
        query = Q["list_user_jobs"]
        if statuses is not None:
            query = Q["list_user_jobs_by_status"]
            asked = [status.value for status in statuses]
            for number in range(1, len(JobStatus) + 1):
                params[f"status_{number}"] = asked[number - 1] if number <= len(asked) else None

        def work(connection: sqlite3.Connection) -> list[Job]:
            return [job_from_row(row) for row in connection.execute(query, params)]

        return await self._run(work)

    async def list_jobs_changed_since(self, user_id: str, since: datetime, limit: int) -> list[Job]:
        params = {"user_id": user_id, "since": _ts(since), "limit": limit}

        def work(connection: sqlite3.Connection) -> list[Job]:
            rows = connection.execute(Q["list_user_jobs_changed_since"], params)
            return [job_from_row(row) for row in rows]

        return await self._run(work)

    async def ping(self) -> None:
        await self._run(lambda connection: connection.execute(Q["ping"]).fetchone())

    async def ready_jobs(self, types: frozenset[str] | None, limit: int) -> list[Job]:
        def work(connection: sqlite3.Connection) -> list[Job]:
            params = {"now": _ts(self._clock()), "types": _types_param(types), "limit": limit}
            return [job_from_row(row) for row in connection.execute(Q["ready_jobs"], params)]

        return await self._run(work)

    def _claim_work(
        self, worker: Worker, types: frozenset[str] | None, limit: int, lease_seconds: float
    ) -> Callable[[sqlite3.Connection], list[Job]]:
        def work(connection: sqlite3.Connection) -> list[Job]:
            now = self._clock()
            params = {"now": _ts(now), "types": _types_param(types), "limit": limit}
            rows = connection.execute(Q["ready_jobs"], params).fetchall()
            started = [
                lifecycle.start(job_from_row(row), now, worker=worker, lease_seconds=lease_seconds)
                for row in rows
            ]
            connection.executemany(Q["update_job"], [_job_params(job) for job in started])
            connection.executemany(Q["insert_event"], [_event_params(job) for job in started])
            return started

        return work

    async def claim(
        self, worker: Worker, types: frozenset[str] | None, limit: int, lease_seconds: float
    ) -> list[Job]:
        started = await self._write(self._claim_work(worker, types, limit, lease_seconds))
        self.hub.publish_jobs(started)
        return started

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
        complete = self._update_work(completion_changes(worker, completions), limits, None)
        claim = self._claim_work(worker, types, limit, lease_seconds)

        def work(
            connection: sqlite3.Connection,
        ) -> tuple[list[Job | JobdeskError], list[Job], list[Job]]:
            outcomes, written = complete(connection) if completions else ([], [])
            return outcomes, written, claim(connection) if limit else []

        outcomes, written, started = await self._write(work)
        self.hub.publish_jobs([*written, *started])
        return outcomes, started

    async def requeue_expired(self, limits: Limits, batch_size: int) -> int:
        def work(connection: sqlite3.Connection) -> list[Job]:
            now = self._clock()
            rows = connection.execute(
                Q["expired_leases"], {"now": _ts(now), "limit": batch_size}
            ).fetchall()
            expired = [lifecycle.expire(job_from_row(row), now, limits=limits) for row in rows]
            connection.executemany(Q["update_job"], [_job_params(job) for job in expired])
            connection.executemany(Q["insert_event"], [_event_params(job) for job in expired])
            return expired

        expired = await self._write(work)
        self.hub.publish_jobs(expired)
        return len(expired)

    async def prune_finished(self, older_than: datetime, batch_size: int) -> int:
        def work(connection: sqlite3.Connection) -> int:
            params = {"older_than": _ts(older_than), "limit": batch_size}
            ids = json.dumps([row[0] for row in connection.execute(Q["finished_before"], params)])
            connection.execute(Q["delete_events_of"], {"ids": ids})
            return connection.execute(Q["delete_jobs"], {"ids": ids}).rowcount

        return await self._write(work)

    async def queue_stats(self, since: datetime) -> tuple[list[QueueCount], list[WorkerSeen]]:
        def work(connection: sqlite3.Connection) -> tuple[list[QueueCount], list[WorkerSeen]]:
            params = {"since": _ts(since)}
            counts = [
                QueueCount(row["type"], JobStatus(row["status"]), row["count"])
                for row in connection.execute(Q["stats_counts"], params)
            ]
            workers = [
                WorkerSeen(
                    row["worker_id"], row["processing"], datetime.fromisoformat(row["last_seen"])
                )
                for row in connection.execute(Q["stats_workers"], params)
            ]
            return counts, workers

        return await self._run(work)

    async def job_events(self, job_id: str) -> list[JobEvent]:
        def work(connection: sqlite3.Connection) -> list[JobEvent]:
            return [
                JobEvent(
                    job_id=row["job_id"],
                    at=datetime.fromisoformat(row["at"]),
                    status=JobStatus(row["status"]),
                    attempt=row["attempt"],
                    worker_id=row["worker_id"],
                    error=_json_value(row["error"]),
                )
                for row in connection.execute(Q["select_events"], {"job_id": job_id})
            ]

        return await self._run(work)

    # -- tokens and users -------------------------------------------------------------------

    async def insert_token(self, record: TokenRecord) -> None:
        def work(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(
                    Q["insert_token"],
                    {
                        "key_id": record.key_id,
                        "kind": record.kind,
                        "subject": record.subject,
                        "secret_hash": record.secret_hash,
                        "types": _types_param(record.types),
                        "created_at": _ts(record.created_at),
                        "expires_at": _ts(record.expires_at),
                    },
                )
            except sqlite3.IntegrityError:
                raise InvalidInput(
                    "name",
                    f"a live {record.kind} token named {record.subject!r} exists; revoke it first",
                ) from None

        await self._write(work)

    async def get_token(self, kind: str, key_id: str) -> TokenRecord | None:
        def work(connection: sqlite3.Connection) -> TokenRecord | None:
            row = connection.execute(Q["select_token"], {"kind": kind, "key_id": key_id}).fetchone()
            return None if row is None else _token_from_row(row)

        return await self._run(work)

    async def revoke_tokens(self, kind: str, subject: str) -> int:
        def work(connection: sqlite3.Connection) -> int:
            params = {"kind": kind, "subject": subject, "now": _ts(self._clock())}
            return connection.execute(Q["revoke_tokens"], params).rowcount

        return await self._write(work)

    async def list_tokens(self, kind: str) -> list[TokenRecord]:
        def work(connection: sqlite3.Connection) -> list[TokenRecord]:
            return [
                _token_from_row(row) for row in connection.execute(Q["list_tokens"], {"kind": kind})
            ]

        return await self._run(work)

    async def set_user_limits(self, user_id: str, user_limits: UserLimits) -> None:
        params = {
            "user_id": user_id,
            "max_active": user_limits.max_active,
            "max_daily": user_limits.max_daily,
        }
        await self._write(lambda connection: connection.execute(Q["upsert_user_limits"], params))

    async def user_usage(self, user_id: str, limits: Limits) -> UserUsage:
        def work(connection: sqlite3.Connection) -> UserUsage:
            now = self._clock()
            row = connection.execute(Q["select_user"], {"user_id": user_id}).fetchone()
            (active,) = connection.execute(Q["count_active"], {"user_id": user_id}).fetchone()
            return usage(user_id, active, row, limits, now)

        return await self._run(work)

    # -- for operators ----------------------------------------------------------------------

    async def throughput(self, since: datetime) -> list[ThroughputMinute]:
        params = {"since": _ts(since), "since_id": first_id_at(since)}

        def work(connection: sqlite3.Connection) -> list[ThroughputMinute]:
            rows = connection.execute(Q["throughput"], params).fetchall()
            return throughput_minutes(
                [
                    (datetime.fromisoformat(f"{minute}:00+00:00"), kind, count)
                    for minute, kind, count in rows
                ]
            )

        return await self._run(work)

    async def oldest_pending(self) -> datetime | None:
        def work(connection: sqlite3.Connection) -> datetime | None:
            (oldest,) = connection.execute(Q["oldest_pending"]).fetchone()
            return _dt(oldest)

        return await self._run(work)

    async def failed_jobs(self, since: datetime, limit: int) -> list[Job]:
        params = {"since": _ts(since), "limit": limit}

        def work(connection: sqlite3.Connection) -> list[Job]:
            return [job_from_row(row) for row in connection.execute(Q["failed_jobs"], params)]

        return await self._run(work)

    async def top_users(self, now: datetime, limit: int) -> list[UserLoad]:
        params = {"day": usage_day(now), "limit": limit}

        def work(connection: sqlite3.Connection) -> list[UserLoad]:
            return [
                UserLoad(row["user_id"], row["active"], row["created_today"])
                for row in connection.execute(Q["top_users"], params)
            ]

        return await self._run(work)

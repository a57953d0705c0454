"""SQLiteStore: the embedded default, one file, one machine, zero set-up.

One connection per store, used from one dedicated thread, so each operation
costs one thread hop however many statements it runs. The database is in WAL
mode; every read-modify-write runs under ``BEGIN IMMEDIATE``, which takes the
database's single write lock first and so serialises it against every other
writer, in this process or another. That is what makes the limits atomic here.

This module holds the store's operations; its connection, thread and
migrations are :mod:`~jobdesk.store.sqlite_connection`'s, and the conversions
between rows and models :mod:`~jobdesk.store.sqlite_rows`'.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

from jobdesk import lifecycle
from jobdesk.errors import InvalidInput, JobdeskError, JobNotFound
from jobdesk.ids import first_id_at
from jobdesk.limits import Limits, usage, usage_day
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
from jobdesk.scheduling import TypeLimits, WaitFacts
from jobdesk.store import Change
from jobdesk.store import sqlite_scheduling as scheduler
from jobdesk.store.common import ABOVE_EVERY_ID, completion_changes, throughput_minutes
from jobdesk.store.sqlite_connection import Q, migrations
from jobdesk.store.sqlite_retention import SQLiteRetention
from jobdesk.store.sqlite_rows import (
    event_params,
    job_from_row,
    job_params,
    json_value,
    parse_time,
    time_text,
    token_from_row,
    types_param,
)
from jobdesk.store.sqlite_schedules import SQLiteSchedules
from jobdesk.store.sqlite_webhooks import SQLiteWebhooks

__all__ = ["Q", "SQLiteStore", "job_from_row", "migrations"]


class SQLiteStore(SQLiteWebhooks, SQLiteSchedules, SQLiteRetention):
    """The :class:`~jobdesk.store.Store` on an SQLite file (``sqlite:///path.db``)."""

    # -- jobs -------------------------------------------------------------------------------

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
            scheduler.admit(connection, spec.user_id, 1, limits, now)
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
            scheduler.admit(connection, specs[0].user_id, len(specs), limits, now)
            jobs = [lifecycle.create(spec, now) for spec in specs]
            self._insert(
                connection, [(job, spec.input_json) for job, spec in zip(jobs, specs, strict=True)]
            )
            return jobs

        jobs = await self._write(work)
        self.hub.publish_jobs(jobs)
        return jobs

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
                    "created_at": time_text(job.created_at),
                    "run_at": time_text(job.run_at),
                    "updated_at": time_text(job.updated_at),
                    "idempotency_key": job.idempotency_key,
                    "traceparent": job.traceparent,
                }
                for job, input_json in jobs
            ],
        )
        connection.executemany(Q["insert_event"], [event_params(job) for job, _ in jobs])

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
        scheduler.account_change(connection, before, after, limits, now)
        connection.execute(Q["update_job"], job_params(after))
        if after.status is not before.status:
            connection.execute(Q["insert_event"], event_params(after))
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
            "types": types_param(types),
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
        params = {"user_id": user_id, "since": time_text(since), "limit": limit}

        def work(connection: sqlite3.Connection) -> list[Job]:
            rows = connection.execute(Q["list_user_jobs_changed_since"], params)
            return [job_from_row(row) for row in rows]

        return await self._run(work)

    async def ping(self) -> None:
        await self._run(lambda connection: connection.execute(Q["ping"]).fetchone())

    async def ready_jobs(
        self, types: frozenset[str] | None, limit: int, limits: Limits
    ) -> list[Job]:
        def work(connection: sqlite3.Connection) -> list[Job]:
            chosen, _, _ = scheduler.plan_starts(connection, types, limit, limits, self._clock())
            return chosen

        return await self._read(work)

    def _claim_work(
        self,
        worker: Worker,
        types: frozenset[str] | None,
        limit: int,
        lease_seconds: float,
        limits: Limits,
    ) -> Callable[[sqlite3.Connection], list[Job]]:
        def work(connection: sqlite3.Connection) -> list[Job]:
            now = self._clock()
            planned = scheduler.plan_starts(connection, types, limit, limits, now)
            return scheduler.write_starts(
                connection, planned, worker=worker, lease_seconds=lease_seconds, now=now
            )

        return work

    async def claim(
        self,
        worker: Worker,
        types: frozenset[str] | None,
        limit: int,
        lease_seconds: float,
        limits: Limits,
    ) -> list[Job]:
        started = await self._write(self._claim_work(worker, types, limit, lease_seconds, limits))
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
        claim = self._claim_work(worker, types, limit, lease_seconds, limits)

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
                Q["expired_leases"], {"now": time_text(now), "limit": batch_size}
            ).fetchall()
            expired = [lifecycle.expire(job_from_row(row), now, limits=limits) for row in rows]
            for row, job in zip(rows, expired, strict=True):
                scheduler.account_change(connection, job_from_row(row), job, limits, now)
            connection.executemany(Q["update_job"], [job_params(job) for job in expired])
            connection.executemany(Q["insert_event"], [event_params(job) for job in expired])
            return expired

        expired = await self._write(work)
        self.hub.publish_jobs(expired)
        return len(expired)

    async def prune_finished(self, older_than: datetime, batch_size: int) -> int:
        def work(connection: sqlite3.Connection) -> int:
            params = {"older_than": time_text(older_than), "limit": batch_size}
            ids = json.dumps([row[0] for row in connection.execute(Q["finished_before"], params)])
            connection.execute(Q["delete_events_of"], {"ids": ids})
            return connection.execute(Q["delete_jobs"], {"ids": ids}).rowcount

        return await self._write(work)

    async def queue_stats(self, since: datetime) -> tuple[list[QueueCount], list[WorkerSeen]]:
        def work(connection: sqlite3.Connection) -> tuple[list[QueueCount], list[WorkerSeen]]:
            params = {"since": time_text(since)}
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
                    error=json_value(row["error"]),
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
                        "types": types_param(record.types),
                        "created_at": time_text(record.created_at),
                        "expires_at": time_text(record.expires_at),
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
            return None if row is None else token_from_row(row)

        return await self._run(work)

    async def revoke_tokens(self, kind: str, subject: str) -> int:
        def work(connection: sqlite3.Connection) -> int:
            params = {"kind": kind, "subject": subject, "now": time_text(self._clock())}
            return connection.execute(Q["revoke_tokens"], params).rowcount

        return await self._write(work)

    async def list_tokens(self, kind: str) -> list[TokenRecord]:
        def work(connection: sqlite3.Connection) -> list[TokenRecord]:
            return [
                token_from_row(row) for row in connection.execute(Q["list_tokens"], {"kind": kind})
            ]

        return await self._run(work)

    async def set_user_limits(self, user_id: str, user_limits: UserLimits) -> None:
        params = {
            "user_id": user_id,
            "max_running": user_limits.max_running,
            "max_waiting": user_limits.max_waiting,
            "max_daily": user_limits.max_daily,
            "weight": user_limits.weight,
        }
        await self._write(lambda connection: connection.execute(Q["upsert_user_limits"], params))

    async def user_usage(self, user_id: str, limits: Limits) -> UserUsage:
        def work(connection: sqlite3.Connection) -> UserUsage:
            row = scheduler.user_row(connection, user_id)
            running = scheduler.running_count(connection, user_id)
            return usage(user_id, running, row, limits, self._clock())

        return await self._read(work)

    # -- job types ----------------------------------------------------------------------------

    async def set_type_limits(self, type_limits: TypeLimits) -> None:
        rate = type_limits.rate
        if type_limits.max_running is None and rate is None:
            params: dict[str, object] = {"type": type_limits.type}
            await self._write(
                lambda connection: connection.execute(Q["delete_type_limits"], params)
            )
            return
        params = {
            "type": type_limits.type,
            "max_running": type_limits.max_running,
            "rate_count": None if rate is None else rate.count,
            "rate_period": None if rate is None else rate.period_seconds,
        }
        await self._write(lambda connection: connection.execute(Q["upsert_type_limits"], params))

    async def type_limits(self) -> list[TypeLimits]:
        def work(connection: sqlite3.Connection) -> list[TypeLimits]:
            return [gate.limits for gate in scheduler.read_gates(connection).values()]

        return await self._run(work)

    async def wait_facts(self, job: Job, limits: Limits) -> WaitFacts:
        def work(connection: sqlite3.Connection) -> WaitFacts:
            return scheduler.wait_facts(connection, job, limits, self._clock())

        return await self._read(work)

    # -- for operators ----------------------------------------------------------------------

    async def throughput(self, since: datetime) -> list[ThroughputMinute]:
        params = {"since": time_text(since), "since_id": first_id_at(since)}

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
            return parse_time(oldest)

        return await self._run(work)

    async def failed_jobs(self, since: datetime, limit: int) -> list[Job]:
        params = {"since": time_text(since), "limit": limit}

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

"""The SQLite store's schedules: rows, and the runner's transaction.

Every schedule write runs under ``BEGIN IMMEDIATE``: the database's one write lock
serialises runners in every process, so a due schedule is fired by one of them,
and its next tick is written in the transaction that creates the tick's job.
The rule (when a tick is due, what a missed one does) is :mod:`jobdesk.schedules`'.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from jobdesk import lifecycle, schedules
from jobdesk.errors import InvalidInput, RateLimited
from jobdesk.limits import Limits
from jobdesk.models import Job
from jobdesk.schedules import Missed, NewSchedule, Schedule
from jobdesk.store import ScheduleChange
from jobdesk.store import sqlite_scheduling as scheduler
from jobdesk.store.common import load_queries
from jobdesk.store.sqlite_connection import Q, SQLiteConnection
from jobdesk.store.sqlite_rows import json_text, json_value, parse_time, time_text

__all__ = ["SQLiteSchedules", "schedule_from_row", "schedule_params"]

#: the named queries of ``sqlite_schedules.sql``
SQ = load_queries("jobdesk.store", "sqlite_schedules.sql")


def schedule_from_row(row: sqlite3.Row) -> Schedule:
    """The one place an SQLite row becomes a :class:`~jobdesk.schedules.Schedule`."""
    return Schedule(
        name=row["name"],
        cron=row["cron"],
        timezone=row["timezone"],
        missed=Missed(row["missed"]),
        type=row["type"],
        input=json_value(row["input"]),
        user_id=row["user_id"],
        project_id=row["project_id"],
        next_run_at=datetime.fromisoformat(row["next_run_at"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        paused=bool(row["paused"]),
        last_tick_at=parse_time(row["last_tick_at"]),
        last_job_id=row["last_job_id"],
        last_error=row["last_error"],
    )


def schedule_params(schedule: Schedule) -> dict[str, Any]:
    """A schedule as the parameters of ``insert_schedule`` and ``write_schedule``."""
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "missed": schedule.missed.value,
        "type": schedule.type,
        "input": json_text(schedule.input) or "null",
        "user_id": schedule.user_id,
        "project_id": schedule.project_id,
        "paused": int(schedule.paused),
        "next_run_at": time_text(schedule.next_run_at),
        "created_at": time_text(schedule.created_at),
        "updated_at": time_text(schedule.updated_at),
        "last_tick_at": time_text(schedule.last_tick_at),
        "last_job_id": schedule.last_job_id,
        "last_error": schedule.last_error,
    }


class SQLiteSchedules(SQLiteConnection):
    """The schedule operations of :class:`~jobdesk.store.sqlite.SQLiteStore`."""

    @staticmethod
    def _insert(connection: sqlite3.Connection, jobs: list[tuple[Job, str]]) -> None:
        """Write new jobs and their first history entries (the store's own)."""
        raise NotImplementedError  # pragma: no cover - SQLiteStore has it

    async def insert_schedule(self, spec: NewSchedule) -> Schedule:
        def work(connection: sqlite3.Connection) -> Schedule:
            schedule = schedules.create(spec, self._clock())
            written = connection.execute(SQ["insert_schedule"], schedule_params(schedule))
            if written.rowcount == 0:
                raise InvalidInput("name", f"{spec.name!r} is already the name of a schedule")
            return schedule

        return await self._write(work)

    async def get_schedule(self, name: str) -> Schedule | None:
        def work(connection: sqlite3.Connection) -> Schedule | None:
            row = connection.execute(SQ["select_schedule"], {"name": name}).fetchone()
            return None if row is None else schedule_from_row(row)

        return await self._run(work)

    async def list_schedules(self, limit: int) -> list[Schedule]:
        def work(connection: sqlite3.Connection) -> list[Schedule]:
            rows = connection.execute(SQ["list_schedules"], {"limit": limit}).fetchall()
            return [schedule_from_row(row) for row in rows]

        return await self._run(work)

    async def update_schedule(self, name: str, change: ScheduleChange) -> Schedule | None:
        def work(connection: sqlite3.Connection) -> Schedule | None:
            row = connection.execute(SQ["select_schedule"], {"name": name}).fetchone()
            if row is None:
                return None
            before = schedule_from_row(row)
            after = change(before, self._clock())
            if after is not before:
                connection.execute(SQ["write_schedule"], schedule_params(after))
            return after

        return await self._write(work)

    async def delete_schedule(self, name: str) -> bool:
        def work(connection: sqlite3.Connection) -> bool:
            return connection.execute(SQ["delete_schedule"], {"name": name}).rowcount > 0

        return await self._write(work)

    async def run_due_schedules(self, limits: Limits, batch_size: int) -> tuple[int, list[Job]]:
        def anything_due(connection: sqlite3.Connection) -> bool:
            now = time_text(self._clock())
            return connection.execute(SQ["any_due"], {"now": now}).fetchone() is not None

        # Runners ask every second in every process: most find nothing, and must not
        # take the database's one write lock (which job writes wait for) to learn it.
        if not await self._run(anything_due):
            return 0, []

        def work(connection: sqlite3.Connection) -> tuple[int, list[Job]]:
            now = self._clock()
            rows = connection.execute(
                SQ["due_schedules"], {"now": time_text(now), "limit": batch_size}
            ).fetchall()
            made: list[Job] = []
            for row in rows:
                schedule = schedule_from_row(row)
                after, job = self._fire(connection, schedule, limits, now)
                connection.execute(SQ["write_schedule"], schedule_params(after))
                if job is not None:
                    made.append(job)
            return len(rows), made

        fired, jobs = await self._write(work)
        if jobs:
            self.hub.publish_jobs(jobs)
        return fired, jobs

    def _fire(
        self, connection: sqlite3.Connection, schedule: Schedule, limits: Limits, now: datetime
    ) -> tuple[Schedule, Job | None]:
        """Fire one due schedule: the schedule as it goes on, and the job it made."""
        firing = schedules.fire(schedule, now)
        if not firing.run:
            return schedules.fired(schedule, firing, now), None
        spec = schedules.job_for(schedule, firing, limits.max_attempts)
        existing = connection.execute(
            Q["select_job_by_idempotency_key"],
            {"user_id": spec.user_id, "idempotency_key": spec.idempotency_key},
        ).fetchone()
        if existing is not None:  # the tick's job is there already: never a second one
            return schedules.fired(schedule, firing, now, job_id=existing["id"]), None
        try:
            scheduler.admit(connection, spec.user_id, 1, limits, now)
        except RateLimited as refusal:
            refused = f"no job for the tick of {firing.tick.isoformat()}: {refusal}"
            return schedules.fired(schedule, firing, now, refused=refused), None
        job = lifecycle.create(spec, now)
        self._insert(connection, [(job, spec.input_json)])
        return schedules.fired(schedule, firing, now, job_id=job.id), job

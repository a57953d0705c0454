"""The PostgreSQL store's schedules: rows, and the runner's transaction.

A runner locks the due schedules ``FOR UPDATE SKIP LOCKED``: many runners in many
processes each take different rows and never wait for one another, and a row
whose tick another runner has just committed no longer matches (PostgreSQL
re-reads a row it locks). Each schedule's next tick is written in the
transaction that creates the tick's job (through ``jobdesk.create_job``, the
user's limits included), so a runner killed mid-way leaves the row as it was.
The rule (when a tick is due, what a missed one does) is :mod:`jobdesk.schedules`'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobdesk import lifecycle, schedules
from jobdesk.errors import InvalidInput, RateLimited
from jobdesk.limits import Limits
from jobdesk.models import Job
from jobdesk.schedules import Missed, NewSchedule, Schedule
from jobdesk.store import ScheduleChange
from jobdesk.store.common import load_queries
from jobdesk.store.postgres_connections import Connection, PostgresConnections, Q
from jobdesk.store.postgres_rows import Row, judge_limits

__all__ = ["PostgresSchedules", "schedule_from_row", "schedule_params"]

#: the named queries of ``postgres_schedules.sql``
SQ = load_queries("jobdesk.store", "postgres_schedules.sql")


def schedule_from_row(row: Row) -> Schedule:
    """The one place a PostgreSQL row becomes a :class:`~jobdesk.schedules.Schedule`."""
    return Schedule(
        name=row["name"],
        cron=row["cron"],
        timezone=row["timezone"],
        missed=Missed(row["missed"]),
        type=row["type"],
        input=row["input"],
        user_id=row["user_id"],
        project_id=row["project_id"],
        next_run_at=row["next_run_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        paused=row["paused"],
        last_tick_at=row["last_tick_at"],
        last_job_id=row["last_job_id"],
        last_error=row["last_error"],
    )


def schedule_params(schedule: Schedule, input_json: str | None = None) -> dict[str, Any]:
    """A schedule as the parameters of ``insert_schedule`` and ``write_schedule``."""
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "missed": schedule.missed.value,
        "type": schedule.type,
        "input": input_json,
        "user_id": schedule.user_id,
        "project_id": schedule.project_id,
        "paused": schedule.paused,
        "next_run_at": schedule.next_run_at,
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
        "last_tick_at": schedule.last_tick_at,
        "last_job_id": schedule.last_job_id,
        "last_error": schedule.last_error,
    }


class PostgresSchedules(PostgresConnections):
    """The schedule operations of :class:`~jobdesk.store.postgres.PostgresStore`."""

    async def insert_schedule(self, spec: NewSchedule) -> Schedule:
        async def work(connection: Connection) -> Schedule:
            row = await self._fetch_one(connection, SQ["store_now"], {"now": self._now_param()})
            assert row is not None
            schedule = schedules.create(spec, row["store_now"])
            cursor = await connection.execute(
                SQ["insert_schedule"], schedule_params(schedule, spec.input_json)
            )
            if cursor.rowcount == 0:
                raise InvalidInput("name", f"{spec.name!r} is already the name of a schedule")
            return schedule

        return await self._run(work)

    async def get_schedule(self, name: str) -> Schedule | None:
        async def work(connection: Connection) -> Schedule | None:
            row = await self._fetch_one(connection, SQ["select_schedule"], {"name": name})
            return None if row is None else schedule_from_row(row)

        return await self._run(work, write=False, single=True)

    async def list_schedules(self, limit: int) -> list[Schedule]:
        async def work(connection: Connection) -> list[Schedule]:
            cursor = await connection.execute(SQ["list_schedules"], {"limit": limit})
            return [schedule_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, write=False, single=True)

    async def update_schedule(self, name: str, change: ScheduleChange) -> Schedule | None:
        async def work(connection: Connection) -> Schedule | None:
            row = await self._fetch_one(
                connection, SQ["lock_schedule"], {"name": name, "now": self._now_param()}
            )
            if row is None:
                return None
            before = schedule_from_row(row)
            after = change(before, row["store_now"])
            if after is not before:
                await connection.execute(SQ["write_schedule"], schedule_params(after))
            return after

        return await self._run(work)

    async def delete_schedule(self, name: str) -> bool:
        async def work(connection: Connection) -> bool:
            cursor = await connection.execute(SQ["delete_schedule"], {"name": name})
            return cursor.rowcount > 0

        return await self._run(work)

    async def run_due_schedules(self, limits: Limits, batch_size: int) -> tuple[int, list[Job]]:
        async def anything_due(connection: Connection) -> bool:
            return (
                await self._fetch_one(connection, SQ["any_due"], {"now": self._now_param()})
                is not None
            )

        # Every server and worker asks each second; most find nothing, in one round trip.
        if not await self._run(anything_due, write=False, single=True):
            return 0, []

        async def work(connection: Connection) -> tuple[int, list[Job]]:
            cursor = await connection.execute(
                SQ["due_schedules"], {"now": self._now_param(), "limit": batch_size}
            )
            rows = await cursor.fetchall()
            made: list[Job] = []
            for row in rows:
                schedule = schedule_from_row(row)
                after, job = await self._fire(connection, schedule, limits, row["store_now"])
                await connection.execute(SQ["write_schedule"], schedule_params(after))
                if job is not None:
                    made.append(job)
            return len(rows), made

        return await self._run(work)

    async def _fire(
        self, connection: Connection, schedule: Schedule, limits: Limits, now: datetime
    ) -> tuple[Schedule, Job | None]:
        """Fire one due schedule: the schedule as it goes on, and the job it made."""
        firing = schedules.fire(schedule, now)
        if not firing.run:
            return schedules.fired(schedule, firing, now), None
        spec = schedules.job_for(schedule, firing, limits.max_attempts)
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
            "now": now,
            "default_max_waiting": limits.max_waiting_per_user,
            "default_max_daily": limits.max_created_per_day,
        }
        existing = await self._fetch_one(connection, Q["select_job_by_idempotency_key"], params)
        if existing is not None:  # the tick's job is there already: never a second one
            return schedules.fired(schedule, firing, now, job_id=existing["id"]), None
        row = await self._fetch_one(connection, Q["create_job"], params)
        assert row is not None
        try:
            judge_limits(row, limits)
        except RateLimited as refusal:
            refused = f"no job for the tick of {firing.tick.isoformat()}: {refusal}"
            return schedules.fired(schedule, firing, now, refused=refused), None
        job = lifecycle.create(spec, now)
        return schedules.fired(schedule, firing, now, job_id=job.id), job

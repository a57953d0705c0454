"""SQLiteGroups: the group operations of :class:`~jobdesk.store.sqlite.SQLiteStore`.

A group's jobs are ordinary jobs; the group is a row and a membership list
(migration 0006). Its status and progress are derived when read
(:func:`jobdesk.groups.summarize`, through :func:`~jobdesk.store.common.group_from_row`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from jobdesk import lifecycle
from jobdesk.groups import Group, NewGroup
from jobdesk.limits import Limits
from jobdesk.models import Job, JobStatus, NewJob
from jobdesk.store import sqlite_scheduling as scheduler
from jobdesk.store.common import (
    ABOVE_EVERY_ID,
    fan_in_document,
    group_from_row,
    load_queries,
    tally_groups,
)
from jobdesk.store.sqlite_connection import SQLiteConnection
from jobdesk.store.sqlite_rows import job_from_row, json_text, json_value, parse_time, time_text

__all__ = ["SQLiteGroups"]

G = load_queries("jobdesk.store", "sqlite_groups.sql")


def _groups(connection: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[Group]:
    """Group rows with their jobs' tallies, as groups."""
    if not rows:
        return []
    ids = json.dumps([row["id"] for row in rows])
    tallies = tally_groups(connection.execute(G["group_counts"], {"ids": ids}))
    return [
        group_from_row(
            row,
            tallies.get(row["id"], {}),
            on_complete=json_value(row["on_complete"]),
            created_at=datetime_of(row["created_at"]),
            cancelled_at=parse_time(row["cancelled_at"]),
        )
        for row in rows
    ]


def datetime_of(text: str) -> datetime:
    """A stored time that is never NULL."""
    value = parse_time(text)
    assert value is not None
    return value


class SQLiteGroups(SQLiteConnection):
    """Groups on SQLite: made, read, listed, cancelled and finished."""

    @staticmethod
    def _insert(connection: sqlite3.Connection, jobs: list[tuple[Job, str]]) -> None:
        """Write new jobs and their first history entries (the store's own)."""
        raise NotImplementedError  # pragma: no cover - SQLiteStore's

    async def insert_group(
        self, group: NewGroup, specs: Sequence[NewJob], limits: Limits
    ) -> tuple[Group, list[Job]]:
        def work(connection: sqlite3.Connection) -> tuple[Group, list[Job]]:
            now = self._clock()
            scheduler.admit(connection, group.user_id, len(specs), limits, now)
            jobs = [lifecycle.create(spec, now) for spec in specs]
            connection.execute(
                G["insert_group"],
                {
                    "id": group.id,
                    "user_id": group.user_id,
                    "project_id": group.project_id,
                    "name": group.name,
                    "on_complete": json_text(fan_in_document(group.on_complete)),
                    "created_at": time_text(now),
                },
            )
            self._insert(
                connection, [(job, spec.input_json) for job, spec in zip(jobs, specs, strict=True)]
            )
            connection.executemany(
                G["insert_group_jobs"],
                [
                    {"group_id": group.id, "position": position, "job_id": job.id}
                    for position, job in enumerate(jobs, start=1)
                ],
            )
            made = Group.of(
                group, created_at=now, counts={JobStatus.PENDING: len(jobs)}, active_progress=0.0
            )
            return made, jobs

        made, jobs = await self._write(work)
        self.hub.publish_jobs(jobs)
        return made, jobs

    async def get_group(self, group_id: str, user_id: str | None = None) -> Group | None:
        def work(connection: sqlite3.Connection) -> Group | None:
            rows = connection.execute(
                G["select_group"], {"id": group_id, "user_id": user_id}
            ).fetchall()
            found = _groups(connection, rows)
            return found[0] if found else None

        return await self._read(work)

    async def list_groups(
        self, user_id: str, *, project_id: str | None, before_id: str | None, limit: int
    ) -> list[Group]:
        params = {
            "user_id": user_id,
            "project_id": project_id,
            "before_id": before_id or ABOVE_EVERY_ID,
            "limit": limit,
        }

        def work(connection: sqlite3.Connection) -> list[Group]:
            return _groups(connection, connection.execute(G["list_user_groups"], params).fetchall())

        return await self._read(work)

    async def list_group_jobs(self, group_id: str, *, after: int, limit: int) -> list[Job]:
        params = {"group_id": group_id, "after": after, "limit": limit}

        def work(connection: sqlite3.Connection) -> list[Job]:
            return [job_from_row(row) for row in connection.execute(G["list_group_jobs"], params)]

        return await self._run(work)

    async def group_job_ids(self, group_id: str, statuses: tuple[JobStatus, ...]) -> list[str]:
        params = {"group_id": group_id, "statuses": json.dumps([s.value for s in statuses])}

        def work(connection: sqlite3.Connection) -> list[str]:
            return [row[0] for row in connection.execute(G["group_job_ids"], params)]

        return await self._run(work)

    async def set_group_cancelled(self, group_id: str, cancelled: bool) -> None:
        def work(connection: sqlite3.Connection) -> None:
            at = time_text(self._clock()) if cancelled else None
            connection.execute(G["set_group_cancelled"], {"id": group_id, "cancelled_at": at})

        await self._write(work)

    async def groups_to_finish(self, limit: int) -> list[Group]:
        def work(connection: sqlite3.Connection) -> list[Group]:
            rows = connection.execute(G["groups_to_finish"], {"limit": limit}).fetchall()
            return _groups(connection, rows)

        return await self._read(work)

    async def set_fan_in(self, group_id: str, job_id: str) -> None:
        params = {"id": group_id, "job_id": job_id}
        await self._write(lambda connection: connection.execute(G["set_fan_in"], params))

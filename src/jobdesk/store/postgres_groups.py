"""PostgresGroups: the group operations of :class:`~jobdesk.store.postgres.PostgresStore`.

A group and all its jobs are made in one round trip (``jobdesk.create_group``,
migration 0009), judged by the user's limits for the whole group under the user's
row lock, like ``jobdesk.create_job``. A group's status and progress are derived
when read (:func:`jobdesk.groups.summarize`, through
:func:`~jobdesk.store.common.group_from_row`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jobdesk import lifecycle
from jobdesk.errors import RateLimited
from jobdesk.groups import Group, NewGroup
from jobdesk.limits import Limits, check_daily, check_waiting
from jobdesk.models import Job, JobStatus, NewJob, UserLimits
from jobdesk.store.common import (
    ABOVE_EVERY_ID,
    fan_in_document,
    group_from_row,
    load_queries,
    tally_groups,
)
from jobdesk.store.postgres_connections import Connection
from jobdesk.store.postgres_rows import Row, job_from_row
from jobdesk.store.postgres_scheduling import PostgresScheduling

__all__ = ["PostgresGroups", "judge_group"]

G = load_queries("jobdesk.store", "postgres_groups.sql")


def judge_group(row: Row, count: int, limits: Limits) -> None:
    """Raise the refusal :mod:`jobdesk.limits` makes of the numbers ``jobdesk.create_group``
    judged ``count`` jobs by (the daily limit first, then the waiting one); if the function
    decided otherwise, the two copies of the rule have drifted."""
    effective = limits.for_user(
        UserLimits(max_waiting=row["max_waiting"], max_daily=row["max_daily"])
    )
    refusal: RateLimited | None = None
    try:
        check_daily(row["created_today"], effective.max_daily, row["store_now"], count)
        check_waiting(row["waiting"], effective.max_waiting, count)
    except RateLimited as raised:
        refusal = raised
    if (refusal is None) != row["created"]:
        raise AssertionError(
            f"jobdesk.create_group (PostgreSQL migration 0009) decided created={row['created']}"
            f" but jobdesk.limits decided {'created' if refusal is None else repr(refusal)}"
            f" from {dict(row)}: bring the function in line with jobdesk.limits"
        )
    if refusal is not None:
        raise refusal


class PostgresGroups(PostgresScheduling):
    """Groups on PostgreSQL: made, read, listed, cancelled and finished."""

    async def _groups(self, connection: Connection, rows: list[Row]) -> list[Group]:
        if not rows:
            return []
        counts = await self._fetch_all(
            G["group_counts"], {"ids": [row["id"] for row in rows]}, connection
        )
        tallies = tally_groups(counts)
        return [
            group_from_row(
                row,
                tallies.get(row["id"], {}),
                on_complete=row["on_complete"],
                created_at=row["created_at"],
                cancelled_at=row["cancelled_at"],
            )
            for row in rows
        ]

    async def insert_group(
        self, group: NewGroup, specs: Sequence[NewJob], limits: Limits
    ) -> tuple[Group, list[Job]]:
        jobs: list[dict[str, Any]] = [
            {
                "id": spec.id,
                "project_id": spec.project_id,
                "type": spec.type,
                "input": spec.input,
                "priority": spec.priority,
                "max_attempts": spec.max_attempts,
                "run_at": None if spec.run_at is None else spec.run_at.isoformat(),
            }
            for spec in specs
        ]
        fan_in = fan_in_document(group.on_complete)
        params = {
            "id": group.id,
            "user_id": group.user_id,
            "project_id": group.project_id,
            "name": group.name,
            "on_complete": None if fan_in is None else json.dumps(fan_in),
            "jobs": json.dumps(jobs),
            "now": self._now_param(),
            "default_max_waiting": limits.max_waiting_per_user,
            "default_max_daily": limits.max_created_per_day,
        }

        async def work(connection: Connection) -> tuple[Group, list[Job]]:
            row = await self._fetch_one(connection, G["create_group"], params)
            assert row is not None
            judge_group(row, len(specs), limits)
            now = row["store_now"]
            made = [lifecycle.create(spec, now) for spec in specs]
            stored = Group.of(
                group, created_at=now, counts={JobStatus.PENDING: len(made)}, active_progress=0.0
            )
            return stored, made

        async def done(connection: Connection) -> tuple[Group, list[Job]] | None:
            # A create whose connection broke may have committed: its group is there.
            row = await self._fetch_one(
                connection, G["select_group"], {"id": group.id, "user_id": None}
            )
            if row is None:
                return None
            [found] = await self._groups(connection, [row])
            return found, [lifecycle.create(spec, found.created_at) for spec in specs]

        return await self._run(work, single=True, done=done)

    async def get_group(self, group_id: str, user_id: str | None = None) -> Group | None:
        async def work(connection: Connection) -> Group | None:
            rows = await self._fetch_all(
                G["select_group"], {"id": group_id, "user_id": user_id}, connection
            )
            found = await self._groups(connection, rows)
            return found[0] if found else None

        return await self._run(work, write=False)

    async def list_groups(
        self, user_id: str, *, project_id: str | None, before_id: str | None, limit: int
    ) -> list[Group]:
        params = {
            "user_id": user_id,
            "project_id": project_id,
            "before_id": before_id or ABOVE_EVERY_ID,
            "limit": limit,
        }

        async def work(connection: Connection) -> list[Group]:
            rows = await self._fetch_all(G["list_user_groups"], params, connection)
            return await self._groups(connection, rows)

        return await self._run(work, write=False)

    async def list_group_jobs(self, group_id: str, *, after: int, limit: int) -> list[Job]:
        params = {"group_id": group_id, "after": after, "limit": limit}

        async def work(connection: Connection) -> list[Job]:
            rows = await self._fetch_all(G["list_group_jobs"], params, connection)
            return [job_from_row(row) for row in rows]

        return await self._run(work, write=False, single=True)

    async def group_job_ids(self, group_id: str, statuses: tuple[JobStatus, ...]) -> list[str]:
        params = {"group_id": group_id, "statuses": [status.value for status in statuses]}

        async def work(connection: Connection) -> list[str]:
            rows = await self._fetch_all(G["group_job_ids"], params, connection)
            return [row["id"] for row in rows]

        return await self._run(work, write=False, single=True)

    async def set_group_cancelled(self, group_id: str, cancelled: bool) -> None:
        params = {"id": group_id, "cancelled": cancelled, "now": self._now_param()}

        async def work(connection: Connection) -> None:
            await connection.execute(G["set_group_cancelled"], params)

        await self._run(work, single=True)

    async def groups_to_finish(self, limit: int) -> list[Group]:
        async def work(connection: Connection) -> list[Group]:
            rows = await self._fetch_all(G["groups_to_finish"], {"limit": limit}, connection)
            return await self._groups(connection, rows)

        return await self._run(work, write=False)

    async def set_fan_in(self, group_id: str, job_id: str) -> None:
        async def work(connection: Connection) -> None:
            await connection.execute(G["set_fan_in"], {"id": group_id, "job_id": job_id})

        await self._run(work, single=True)

"""The operator's queries on PostgreSQL: queue depth, workers, throughput, failures, load.

Read-only and bounded (by a time window or a limit), for the admin dashboard and
the CLI; the indexes they rely on are checked by ``tests/integration/test_stats_plans.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jobdesk.ids import first_id_at
from jobdesk.models import Job, JobStatus, QueueCount, ThroughputMinute, UserLoad, WorkerSeen
from jobdesk.store.common import throughput_minutes
from jobdesk.store.postgres_connections import Connection, PostgresConnections, Q
from jobdesk.store.postgres_rows import job_from_row

__all__ = ["PostgresOperatorQueries"]


class PostgresOperatorQueries(PostgresConnections):
    """The operator queries of :class:`~jobdesk.store.postgres.PostgresStore`."""

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

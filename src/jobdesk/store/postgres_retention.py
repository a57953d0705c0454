"""The PostgreSQL store's retention: the one-runner lease and the batched deletes.

The rule (which finished job is expired) is :func:`jobdesk.retention.is_expired`;
``delete_expired`` in ``postgres_retention.sql`` restates it over the rows of
:meth:`jobdesk.retention.RetentionPolicy.cutoffs`. Each batch is one short
transaction, so a pass never holds back vacuum's horizon for long.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jobdesk.models import JobStatus
from jobdesk.retention import Cutoff, RetentionReport, RetentionState
from jobdesk.store.common import load_queries
from jobdesk.store.postgres_connections import Connection, PostgresConnections

__all__ = ["PostgresRetention", "cutoff_params"]

#: the named queries of ``postgres_retention.sql``
RQ = load_queries("jobdesk.store", "postgres_retention.sql")


def cutoff_params(cutoffs: Sequence[Cutoff]) -> dict[str, Any] | None:
    """The cutoffs as ``delete_expired``'s parameters; None when nothing can expire."""
    befores = [cutoff.before for cutoff in cutoffs if cutoff.before is not None]
    if not befores:
        return None
    return {
        "statuses": [cutoff.status.value for cutoff in cutoffs],
        "types": [cutoff.type for cutoff in cutoffs],
        "befores": [cutoff.before for cutoff in cutoffs],
        "latest": max(befores),
    }


class PostgresRetention(PostgresConnections):
    """The retention operations of :class:`~jobdesk.store.postgres.PostgresStore`."""

    async def delete_expired(
        self, cutoffs: Sequence[Cutoff], batch_size: int, after: datetime | None = None
    ) -> tuple[dict[JobStatus, int], datetime | None]:
        params = cutoff_params(cutoffs)
        if params is None:
            return {}, after
        params["limit"] = batch_size
        params["after"] = after

        async def work(connection: Connection) -> tuple[dict[JobStatus, int], datetime | None]:
            rows = await self._fetch_all(RQ["delete_expired"], params, connection)
            newest = max((row["finished_at"] for row in rows), default=after)
            return dict(Counter(JobStatus(row["status"]) for row in rows)), newest

        return await self._run(work, single=True)

    async def count_expired(self, cutoffs: Sequence[Cutoff]) -> dict[JobStatus, int]:
        params = cutoff_params(cutoffs)
        if params is None:
            return {}

        async def work(connection: Connection) -> dict[JobStatus, int]:
            rows = await self._fetch_all(RQ["count_expired"], params, connection)
            return {JobStatus(row["status"]): row["count"] for row in rows}

        return await self._run(work, write=False, single=True)

    async def take_retention_lease(self, holder: str, seconds: float) -> bool:
        params = {"holder": holder, "seconds": seconds, "now": self._now_param()}

        async def work(connection: Connection) -> bool:
            return await self._fetch_one(connection, RQ["take_retention_lease"], params) is not None

        return await self._run(work, single=True)

    async def end_retention_run(self, holder: str, report: RetentionReport | None) -> None:
        async def work(connection: Connection) -> None:
            if report is None:
                await connection.execute(RQ["release_retention_lease"], {"holder": holder})
                return
            await connection.execute(
                RQ["record_retention_run"],
                {
                    "holder": holder,
                    "started_at": report.started_at,
                    "finished_at": report.finished_at,
                    "deleted": json.dumps({str(k): v for k, v in report.deleted.items()}),
                    "batches": report.batches,
                    "more": report.more,
                },
            )

        await self._run(work, single=True)

    async def retention_state(self) -> RetentionState:
        async def work(connection: Connection) -> RetentionState:
            row = await self._fetch_one(connection, RQ["select_retention_state"], {})
            assert row is not None
            last = None
            if row["last_finished_at"] is not None:
                last = RetentionReport(
                    started_at=row["last_started_at"],
                    finished_at=row["last_finished_at"],
                    deleted={JobStatus(k): v for k, v in (row["last_deleted"] or {}).items()},
                    batches=row["last_batches"] or 0,
                    more=bool(row["last_more"]),
                )
            return RetentionState(row["holder"], row["held_until"], last)

        return await self._run(work, write=False, single=True)

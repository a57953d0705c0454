"""The SQLite store's retention: the one-runner lease and the batched deletes.

The rule (which finished job is expired) is :func:`jobdesk.retention.is_expired`;
``expired_jobs`` in ``sqlite_retention.sql`` restates it over the rows of
:meth:`jobdesk.retention.RetentionPolicy.cutoffs`. Each batch is one short write
transaction, so other writers wait for one batch at most.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from jobdesk.models import JobStatus
from jobdesk.retention import Cutoff, RetentionReport, RetentionState
from jobdesk.store.common import load_queries
from jobdesk.store.sqlite_connection import Q, SQLiteConnection
from jobdesk.store.sqlite_rows import json_text, json_value, parse_time, time_text

__all__ = ["SQLiteRetention", "cutoff_params"]

#: the named queries of ``sqlite_retention.sql``
RQ = load_queries("jobdesk.store", "sqlite_retention.sql")


def cutoff_params(cutoffs: Sequence[Cutoff]) -> dict[str, Any] | None:
    """The cutoffs as ``expired_jobs``' parameters; None when nothing can expire."""
    befores = [cutoff.before for cutoff in cutoffs if cutoff.before is not None]
    if not befores:
        return None
    rules = [
        {"status": cutoff.status.value, "type": cutoff.type, "before": time_text(cutoff.before)}
        for cutoff in cutoffs
    ]
    return {"rules": json_text(rules), "latest": time_text(max(befores))}


class SQLiteRetention(SQLiteConnection):
    """The retention operations of :class:`~jobdesk.store.sqlite.SQLiteStore`."""

    async def delete_expired(
        self, cutoffs: Sequence[Cutoff], batch_size: int, after: datetime | None = None
    ) -> tuple[dict[JobStatus, int], datetime | None]:
        params = cutoff_params(cutoffs)
        if params is None:
            return {}, after
        params["limit"] = batch_size
        params["after"] = time_text(after)

        def work(connection: sqlite3.Connection) -> tuple[dict[JobStatus, int], datetime | None]:
            rows = connection.execute(RQ["expired_jobs"], params).fetchall()
            ids = json.dumps([row["id"] for row in rows])
            connection.execute(Q["delete_events_of"], {"ids": ids})
            connection.execute(Q["delete_jobs"], {"ids": ids})
            newest = max((row["finished_at"] for row in rows), default=None)
            return (
                dict(Counter(JobStatus(row["status"]) for row in rows)),
                after if newest is None else parse_time(newest),
            )

        return await self._write(work)

    async def count_expired(self, cutoffs: Sequence[Cutoff]) -> dict[JobStatus, int]:
        params = cutoff_params(cutoffs)
        if params is None:
            return {}
        params["limit"] = -1  # SQLite's "no limit"
        params["after"] = None

        def work(connection: sqlite3.Connection) -> dict[JobStatus, int]:
            rows = connection.execute(RQ["expired_jobs"], params)
            return dict(Counter(JobStatus(row["status"]) for row in rows))

        return await self._read(work)

    async def take_retention_lease(self, holder: str, seconds: float) -> bool:
        now = self._clock()
        params = {
            "holder": holder,
            "now": time_text(now),
            "until": time_text(now + timedelta(seconds=seconds)),
        }

        def work(connection: sqlite3.Connection) -> bool:
            return connection.execute(RQ["take_retention_lease"], params).rowcount == 1

        return await self._write(work)

    async def end_retention_run(self, holder: str, report: RetentionReport | None) -> None:
        def work(connection: sqlite3.Connection) -> None:
            if report is None:
                connection.execute(RQ["release_retention_lease"], {"holder": holder})
                return
            connection.execute(
                RQ["record_retention_run"],
                {
                    "holder": holder,
                    "started_at": time_text(report.started_at),
                    "finished_at": time_text(report.finished_at),
                    "deleted": json_text({str(k): v for k, v in report.deleted.items()}),
                    "batches": report.batches,
                    "more": int(report.more),
                },
            )

        await self._write(work)

    async def retention_state(self) -> RetentionState:
        def work(connection: sqlite3.Connection) -> RetentionState:
            row = connection.execute(RQ["select_retention_state"]).fetchone()
            last = None
            if row["last_finished_at"] is not None:
                started_at = parse_time(row["last_started_at"])
                finished_at = parse_time(row["last_finished_at"])
                assert started_at is not None
                assert finished_at is not None
                last = RetentionReport(
                    started_at=started_at,
                    finished_at=finished_at,
                    deleted={
                        JobStatus(k): v for k, v in (json_value(row["last_deleted"]) or {}).items()
                    },
                    batches=row["last_batches"] or 0,
                    more=bool(row["last_more"]),
                )
            return RetentionState(row["holder"], parse_time(row["held_until"]), last)

        return await self._run(work)

"""OperatorQueries: what an operator (the admin dashboard, the CLI) asks of the desk.

Queue depth and throughput, failed jobs and the busiest users, any job by id,
the job types' pools and rates, and the housekeeping every deployment runs:
returning expired leases to the queue, retention passes (:mod:`jobdesk.retention`)
and pruning finished jobs. None of it is scoped to a user: never call it on a user's
behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from datetime import datetime, timedelta

from jobdesk import scheduling, validation
from jobdesk.desk_base import DeskBase
from jobdesk.errors import InvalidInput, JobNotFound
from jobdesk.models import Job, JobStatus, QueueStats, ThroughputMinute, UserLoad
from jobdesk.retention import Cutoff, RetentionPolicy, RetentionReport, RetentionState

__all__ = ["OperatorQueries"]

_REAPER_BATCH = 500
_PRUNE_BATCH = 1000
_MAX_WINDOW = timedelta(days=1)
#: how long a retention pass's lease lasts without renewal (each batch renews it)
RETENTION_LEASE_SECONDS = 120.0
#: the most jobs one retention batch (one transaction) may delete
MAX_RETENTION_BATCH = 10_000


class OperatorQueries(DeskBase):
    """The operator queries and housekeeping of :class:`jobdesk.JobDesk`."""

    async def set_type_limits(
        self,
        type: str,  # noqa: A002 - the jobs' own word for it
        *,
        max_running: int | None = None,
        rate: str | None = None,
    ) -> scheduling.TypeLimits:
        """Give a job type a pool and a rate, across every worker and process.

        ``max_running``: at most that many of its jobs processing at once (a pool of
        4 GPUs, a licence count). ``rate``: at most that many starts per period,
        spread evenly (``"60/min"`` starts one a second; units s, min, hour, day).
        Jobs over either wait; they are never refused and never spend an attempt.
        Both None removes the type's limits. Returns what is now in force.
        """
        checked = scheduling.TypeLimits(
            type=validation.job_type(type, self.types),
            max_running=(
                None
                if max_running is None
                else validation.integer("max_running", max_running, 0, 1_000_000)
            ),
            rate=None if rate is None else scheduling.Rate.parse(rate),
        )
        await self.store.set_type_limits(checked)
        return checked

    async def get_type_limits(self) -> list[scheduling.TypeLimits]:
        """Every job type that has a pool or a rate, by type."""
        return await self.store.type_limits()

    async def requeue_expired(self) -> int:
        """Return jobs whose lease ran out to the queue (or fail them); how many.

        Safe to run from many processes at once; workers and servers call it
        periodically.
        """
        total = 0
        while True:
            count = await self.store.requeue_expired(self.limits, _REAPER_BATCH)
            total += count
            if count < _REAPER_BATCH:
                return total

    async def prune_finished(self, older_than: timedelta) -> int:
        """Delete jobs that finished more than ``older_than`` ago, in bounded batches; how many.

        Their history goes with them. Pending and processing jobs are never pruned.
        """
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise InvalidInput("older_than", "must be a non-negative timedelta")
        cutoff = await self.store.now() - older_than
        total = 0
        while True:
            count = await self.store.prune_finished(cutoff, _PRUNE_BATCH)
            total += count
            if count < _PRUNE_BATCH:
                return total

    async def apply_retention(
        self,
        policy: RetentionPolicy | None = None,
        *,
        batch_size: int = 500,
        max_batches: int | None = None,
        dry_run: bool = False,
        pause: float = 0.0,
    ) -> RetentionReport:
        """Delete the finished jobs ``policy`` says are expired (default
        :class:`~jobdesk.retention.RetentionPolicy`: completed after 7 days, failed and
        cancelled after 30), with their history; what it did.

        It works in batches of ``batch_size`` jobs, oldest first, each its own short
        transaction, sleeping ``pause`` seconds between them, and stops after
        ``max_batches`` (``more`` then says expired jobs may be left). Only one
        process runs a pass at a time: when another holds the deployment's retention
        lease, the report says ``ran=False`` and nothing was deleted. ``dry_run``
        counts the expired jobs instead, deleting nothing. Pending and processing jobs
        are never deleted; groups keep their other jobs.
        """
        if policy is None:
            policy = RetentionPolicy()
        elif not isinstance(policy, RetentionPolicy):
            raise InvalidInput("policy", "must be a RetentionPolicy or None (the defaults)")
        batch_size = validation.integer("batch_size", batch_size, 1, MAX_RETENTION_BATCH)
        if max_batches is not None:
            max_batches = validation.integer("max_batches", max_batches, 1, 1_000_000_000)
        if not isinstance(dry_run, bool):
            raise InvalidInput("dry_run", "must be true or false")
        pause = validation.seconds("pause", pause, 60.0)
        started_at = await self.store.now()
        cutoffs = policy.cutoffs(started_at)
        if dry_run:
            counted = await self.store.count_expired(cutoffs)
            return RetentionReport(started_at, await self.store.now(), counted, dry_run=True)
        holder = f"{socket.gethostname()[:64]}/{os.getpid()}/{secrets.token_hex(4)}"
        try:
            # Inside the try: a cancellation may land after the store took the lease.
            if not await self.store.take_retention_lease(holder, RETENTION_LEASE_SECONDS):
                return RetentionReport(started_at, started_at, {}, ran=False)
            report = await self._retention_batches(
                holder,
                started_at,
                cutoffs,
                batch_size=batch_size,
                max_batches=max_batches,
                pause=pause,
            )
            await self.store.end_retention_run(holder, report)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.store.end_retention_run(holder, None)
            raise
        return report

    async def _retention_batches(
        self,
        holder: str,
        started_at: datetime,
        cutoffs: list[Cutoff],
        *,
        batch_size: int,
        max_batches: int | None,
        pause: float,
    ) -> RetentionReport:
        deleted: dict[JobStatus, int] = {}
        batches = 0
        more = False
        after: datetime | None = None  # each batch walks on from where the last one ended
        while True:
            if max_batches is not None and batches >= max_batches:
                more = True
                break
            if batches and not await self.store.take_retention_lease(
                holder, RETENTION_LEASE_SECONDS
            ):
                break  # the lease ran out under us and another runner took it
            counts, after = await self.store.delete_expired(cutoffs, batch_size, after)
            batches += 1
            for status, count in counts.items():
                deleted[status] = deleted.get(status, 0) + count
            if sum(counts.values()) < batch_size:
                break
            await asyncio.sleep(pause)  # at least yield: serve's requests go first
        return RetentionReport(
            started_at, await self.store.now(), deleted, batches=batches, more=more
        )

    async def get_retention_state(self) -> RetentionState:
        """For operators: who runs retention now, if anyone, and what its last pass did."""
        return await self.store.retention_state()

    async def get_queue_stats(self, window: timedelta = timedelta(minutes=5)) -> QueueStats:
        """For operators: queue depth by type and status, workers seen, recent throughput.

        Counts every pending and processing job, and the jobs that finished within
        ``window`` (completed ones are the throughput). A worker is seen if it holds
        a job now or finished one within ``window``.
        """
        if not isinstance(window, timedelta) or window <= timedelta(0):
            raise InvalidInput("window", "must be a positive timedelta")
        now = await self.store.now()
        counts, workers = await self.store.queue_stats(now - window)
        return QueueStats(now, window.total_seconds(), counts, workers)

    async def get_throughput(
        self, window: timedelta = timedelta(hours=1)
    ) -> list[ThroughputMinute]:
        """For operators: jobs created, completed and failed in each minute of ``window``.

        Every minute of the window is there, oldest first, quiet ones with zeros.
        """
        if not isinstance(window, timedelta) or not timedelta(0) < window <= _MAX_WINDOW:
            raise InvalidInput("window", "must be a positive timedelta of at most one day")
        now = await self.store.now()
        first = now.replace(second=0, microsecond=0) - window + timedelta(minutes=1)
        found = {point.minute: point for point in await self.store.throughput(first)}
        minutes = int(window / timedelta(minutes=1))
        return [
            found.get(minute, ThroughputMinute(minute))
            for minute in (first + timedelta(minutes=step) for step in range(minutes))
        ]

    async def get_oldest_pending(self) -> datetime | None:
        """For operators: when the oldest pending job was created; None if none is pending."""
        return await self.store.oldest_pending()

    async def get_failed_jobs(
        self, *, window: timedelta = timedelta(days=1), limit: int = 20
    ) -> list[Job]:
        """For operators: the jobs of any user that failed within ``window``, latest first."""
        if not isinstance(window, timedelta) or not timedelta(0) < window <= _MAX_WINDOW * 7:
            raise InvalidInput("window", "must be a positive timedelta of at most a week")
        since = await self.store.now() - window
        return await self.store.failed_jobs(since, validation.page_limit(limit))

    async def get_top_users(self, *, limit: int = 10) -> list[UserLoad]:
        """For operators: the ``limit`` users with the most active jobs and the ``limit``
        with the most created today (so up to twice ``limit``), busiest first."""
        return await self.store.top_users(await self.store.now(), validation.page_limit(limit))

    async def find_job(self, job_id: str) -> Job:
        """For operators: any user's job by id; :class:`~jobdesk.errors.JobNotFound` if none.

        Never call it on a user's behalf: user operations are scoped to their user.
        """
        job_id = validation.job_id(job_id)
        job = await self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

"""OperatorQueries: what an operator (the admin dashboard, the CLI) asks of the desk.

Queue depth and throughput, failed jobs and the busiest users, any job by id,
the job types' pools and rates, and the housekeeping every deployment runs:
returning expired leases to the queue and pruning finished jobs. None of it is
scoped to a user: never call it on a user's behalf.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jobdesk import scheduling, validation
from jobdesk.desk_base import DeskBase
from jobdesk.errors import InvalidInput, JobNotFound
from jobdesk.models import Job, QueueStats, ThroughputMinute, UserLoad

__all__ = ["OperatorQueries"]

_REAPER_BATCH = 500
_PRUNE_BATCH = 1000
_MAX_WINDOW = timedelta(days=1)


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

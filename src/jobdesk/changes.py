"""Live job changes inside one process: what stores publish and subscribers read.

A store publishes a :class:`JobChange` after each committed write (SQLite, in
process) or as PostgreSQL's NOTIFY delivers it (every process sees every
other's changes). Subscribers are workers waiting for work and event streams
waiting for progress. Notifications are a speed-up, never the guarantee: a
subscriber that gets :data:`RESYNC` (the feed may have missed changes, e.g.
while a connection was being re-established) must re-read what it cares about,
and workers keep polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from jobdesk.models import Job, JobStatus

__all__ = ["RESYNC", "ChangeHub", "JobChange", "Subscription"]


@dataclass(frozen=True, slots=True)
class JobChange:
    """What changed in one job: enough to route it and to draw a progress bar."""

    job_id: str
    user_id: str
    type: str
    status: JobStatus
    progress: float
    progress_message: str | None
    attempt: int
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobChange:
        """The change that writing ``job`` makes."""
        return cls(
            job.id,
            job.user_id,
            job.type,
            job.status,
            job.progress,
            job.progress_message,
            job.attempt,
            job.updated_at,
        )


class _Resync:
    def __repr__(self) -> str:
        return "RESYNC"


RESYNC: Final = _Resync()
"""Published when changes may have been missed: re-read instead of trusting the feed."""

_QUEUE_SIZE = 10_000


class Subscription:
    """One subscriber's queue of changes; iterate it, or ``await next_change(within=...)``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[JobChange | _Resync] = asyncio.Queue(_QUEUE_SIZE)

    def _offer(self, change: JobChange | _Resync) -> None:
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            # A subscriber this far behind has lost track anyway: drop its backlog and
            # tell it to re-read, rather than let one slow reader hold memory forever.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(RESYNC)

    async def next_change(self, within: float | None = None) -> JobChange | _Resync | None:
        """The next change, or None after ``within`` seconds without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), within)
        except TimeoutError:
            return None

    def __aiter__(self) -> AsyncIterator[JobChange | _Resync]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JobChange | _Resync]:
        while True:
            yield await self._queue.get()


class ChangeHub:
    """Fans changes out to every subscriber in this process (one event loop)."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    def publish(self, change: JobChange | _Resync) -> None:
        """Hand ``change`` to every subscriber; never blocks."""
        for subscription in self._subscribers:
            subscription._offer(change)

    def publish_jobs(self, jobs: list[Job]) -> None:
        """Publish the change of each written job."""
        if self._subscribers:
            for job in jobs:
                self.publish(JobChange.of(job))

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A subscription for the duration of the ``async with`` block."""
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

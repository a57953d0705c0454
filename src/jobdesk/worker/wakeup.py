"""Wakeup: what makes a waiting worker look at the queue again.

The worker's loop sleeps between claims until one of these: a notification that
a job of its types became pending, a slot that freed up, a stop, or the poll
interval. Notifications that only say "re-read" (:data:`~jobdesk.changes.RESYNC`,
which on SQLite every other process's commit sends) are coalesced here, so that
an idle worker beside busy ones does not claim on every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

from jobdesk.changes import RESYNC, JobChange
from jobdesk.models import JobStatus
from jobdesk.worker.transport import ChangeFeed

__all__ = ["RESYNC_SPACING", "Wakeup"]

#: RESYNC notifications wake the worker at most once in this many seconds (the first at once)
RESYNC_SPACING = 0.02


class Wakeup:
    """One worker's wake-up call: set by whatever may mean work, awaited by its loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._resync_wake: asyncio.TimerHandle | None = None
        self._last_resync_wake = -math.inf
        #: loop time of the latest sign that the queue may hold new work: a notification,
        #: a RESYNC, or a poll interval gone by (a claim sent since has seen it)
        self.work_at = -math.inf

    def set(self) -> None:
        """Wake the loop (a slot freed up, a stop, new work)."""
        self._event.set()

    def clear(self) -> None:
        """Forget earlier calls: the loop is about to look at everything again."""
        self._event.clear()

    async def sleep(self, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        """Until woken (a change, a free slot, a stop) or ``seconds`` have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(loop.time() + seconds):
                await self._event.wait()

    async def poll(self, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        """As :meth:`sleep`, but ``seconds`` gone by count as a sign of work: the poll
        interval is how jobs that became due without a notification are found."""
        try:
            async with asyncio.timeout_at(loop.time() + seconds):
                await self._event.wait()
        except TimeoutError:
            self.work_at = loop.time()

    async def listen(self, feed: ChangeFeed, types: frozenset[str], poll_interval: float) -> None:
        """Wake on every job of ``types`` that became pending, and on RESYNC (coalesced)."""
        loop = asyncio.get_running_loop()
        while True:
            change = await feed.next_change()
            if change is RESYNC:
                # On SQLite every commit of another process arrives as RESYNC: the first
                # wakes the worker at once (it may be new work), the next ones are
                # coalesced, so that an idle worker beside busy ones claims at most once
                # per RESYNC_SPACING (an empty claim is a read and a lock, no write).
                if self._resync_wake is None:
                    due = self._last_resync_wake + min(RESYNC_SPACING, poll_interval)
                    if loop.time() >= due:
                        self._wake_on_resync()
                    else:
                        self._resync_wake = loop.call_at(due, self._wake_on_resync)
            elif (
                isinstance(change, JobChange)
                and change.status is JobStatus.PENDING
                and change.type in types
            ):
                self.work_at = loop.time()
                self._event.set()

    def cancel(self) -> None:
        """Drop a coalesced RESYNC wake-up still to come (the worker is done)."""
        if self._resync_wake is not None:
            self._resync_wake.cancel()

    def _wake_on_resync(self) -> None:
        self._resync_wake = None
        self._last_resync_wake = self.work_at = asyncio.get_running_loop().time()
        self._event.set()

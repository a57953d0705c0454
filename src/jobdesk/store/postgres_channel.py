"""The LISTEN side of PostgreSQL's change notifications.

A trigger on ``jobdesk.jobs`` announces each committed change with ``NOTIFY`` on
:data:`CHANNEL` (and, for jobs that became pending, on :data:`READY_CHANNEL`).
One listening connection per channel per process turns the payloads into
:class:`~jobdesk.changes.JobChange` for the process's
:class:`~jobdesk.changes.ChangeHub`, and comes back by itself after the
connection or the server goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import psycopg

from jobdesk.changes import RESYNC, ChangeHub, JobChange, Subscription
from jobdesk.models import JobStatus

__all__ = ["CHANNEL", "READY_CHANNEL", "Channel", "change_from_payload"]

#: every committed change of every job
CHANNEL = "jobdesk_changes"
#: the same notifications, only for jobs that became pending (migration 0006): workers'
READY_CHANNEL = "jobdesk_ready"
_log = logging.getLogger("jobdesk.store.postgres")


def change_from_payload(payload: str) -> JobChange:
    """A notification's JSON payload (the trigger's) as a :class:`JobChange`."""
    data = json.loads(payload)
    return JobChange(
        job_id=data["id"],
        user_id=data["user_id"],
        type=data["type"],
        status=JobStatus(data["status"]),
        progress=data["progress"],
        progress_message=data["message"],
        attempt=data["attempt"],
        updated_at=datetime.fromisoformat(data["at"]),
    )


class Channel:
    """One LISTEN channel: a connection of its own, resumed after it breaks, and a hub
    that fans its notifications out to this process's subscribers."""

    def __init__(self, conninfo: str, name: str) -> None:
        self._conninfo = conninfo
        self._name = name
        self.hub = ChangeHub()
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A subscription to this channel; starts listening if needed."""
        if self._listener is None or self._listener.done():
            self._listening.clear()
            self._listener = asyncio.create_task(self._listen(), name=f"{self._name}-listener")
        async with self.hub.subscribe() as subscription:
            with contextlib.suppress(TimeoutError):
                # Changes committed before LISTEN took effect would be missed; the first
                # subscriber waits (briefly) until it has.
                await asyncio.wait_for(self._listening.wait(), timeout=5)
            yield subscription

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {self._name}")
                    self._listening.set()
                    # Anything committed while we were away was not heard: say so.
                    self.hub.publish(RESYNC)
                    delay = 0.1
                    async for notification in connection.notifies():
                        try:
                            self.hub.publish(change_from_payload(notification.payload))
                        except (ValueError, KeyError) as exc:
                            _log.warning("ignoring a malformed notification: %s", exc)
            except psycopg.Error as exc:
                self._listening.clear()
                _log.warning("listening connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

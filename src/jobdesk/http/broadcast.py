"""The app's one subscription to the change feed, fanned out to event streams.

A :class:`Broadcaster` holds a single ``desk.subscribe()`` (NOTIFY on PostgreSQL,
in-process on SQLite) and hands each change to the :class:`Listener` of every
open stream of the user who owns the job, and each job that became pending to
the listeners of remote workers that may take its type. Streams never poll the
database.

It also holds what those streams share: the count of each holder's open streams
(:class:`StreamSlots`, the per-user and per-worker-token cap) and the work a change
costs (:class:`Shared`: one read and one render per change, however many streams
show the job).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from jobdesk.changes import JobChange
from jobdesk.desk import JobDesk
from jobdesk.errors import StoreUnavailable
from jobdesk.http.guards import Guards
from jobdesk.models import JobStatus

__all__ = ["Broadcaster", "Item", "Listener", "Shared", "Signal", "StreamSlots"]

T = TypeVar("T")
_QUEUE_SIZE = 1000
_SHARED_SIZE = 1024
_READY_TIMEOUT = 10.0
_log = logging.getLogger("jobdesk.http.sse")


class Signal(enum.Enum):
    """What a listener may get besides a change."""

    #: changes may have been missed: re-read
    RESYNC = "resync"
    #: the feed stopped (shutdown, or it failed): end the stream, the client reconnects
    CLOSED = "closed"


Item = JobChange | Signal


class Listener:
    """One stream's queue: its user's changes, or (``user_id=None``) work for a worker."""

    def __init__(
        self, broadcaster: Broadcaster, user_id: str | None, types: frozenset[str] | None = None
    ) -> None:
        #: whose changes this listener gets; None for a worker's listener
        self.user_id = user_id
        #: a worker listener's job types (None: every type)
        self.types = types
        self._broadcaster = broadcaster
        self._queue: asyncio.Queue[Item] = asyncio.Queue(_QUEUE_SIZE)

    def offer(self, item: Item) -> None:
        """Queue ``item``; a listener too far behind drops its backlog for one RESYNC."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(Signal.RESYNC)

    async def next(self, within: float) -> Item | None:
        """The next item, or None after ``within`` seconds without one."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            # asyncio.timeout, not wait_for: no task per wait, which counts when one
            # change wakes thousands of streams.
            async with asyncio.timeout(within):
                return await self._queue.get()
        except TimeoutError:
            return None

    @property
    def broadcaster(self) -> Broadcaster:
        """The broadcaster this listener is registered with."""
        return self._broadcaster

    def close(self) -> None:
        """Stop listening (idempotent)."""
        self._broadcaster.remove(self)


class StreamSlots:
    """How many event streams each holder (a user, a worker token) has open."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def count(self, holder: str) -> int:
        """The streams ``holder`` has open now."""
        return self._open.get(holder, 0)

    def take(self, holder: str, limit: int) -> bool:
        """Count one more stream of ``holder``, unless it already has ``limit`` open.

        No ``await`` between the check and the count: on one event loop, concurrent
        requests cannot both take the last slot.
        """
        if self._open.get(holder, 0) >= limit:
            return False
        self._open[holder] = self._open.get(holder, 0) + 1
        return True

    def give_back(self, holder: str) -> None:
        """A stream of ``holder`` ended."""
        left = self._open.get(holder, 0) - 1
        if left > 0:
            self._open[holder] = left
        else:
            self._open.pop(holder, None)


class Shared:
    """Work done once and awaited by every stream that needs it: render once, fan out.

    One change reaches every open stream of its user at the same moment; each would
    read the job (and its history) and render the same HTML. Keyed by the change,
    the first stream does the work and the others await its result. The last
    ``size`` results are kept, so a stream that lags a little still shares.
    """

    def __init__(self, size: int = _SHARED_SIZE) -> None:
        self._size = size
        self._work: OrderedDict[Hashable, asyncio.Future[Any]] = OrderedDict()

    async def once(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """``await make()``, or the result (or error) of the call already made for ``key``."""
        future = self._work.get(key)
        if future is None:
            future = asyncio.ensure_future(make())
            future.add_done_callback(_observe)
            self._work[key] = future
            while len(self._work) > self._size:
                self._work.popitem(last=False)
        # shield: a stream that goes away must not cancel the work the others await.
        result: T = await asyncio.shield(future)
        return result


def _observe(future: asyncio.Future[Any]) -> None:
    # Every waiter may have gone; the error is not lost, it is raised to any later one.
    if not future.cancelled():
        future.exception()


class Broadcaster:
    """The app's one subscription to the change feed, fanned out by user."""

    def __init__(self, desk: JobDesk) -> None:
        self._desk = desk
        self._listeners: dict[str, set[Listener]] = {}
        self._work_listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        #: open streams by holder, for the per-user and per-worker-token cap
        self.slots = StreamSlots()
        #: reads and renders shared by the streams a change reaches
        self.shared = Shared()
        #: the open streams' credentials, checked again by one task
        self.guards = Guards()

    @property
    def listener_count(self) -> int:
        """How many streams are listening."""
        return len(self._work_listeners) + sum(len(group) for group in self._listeners.values())

    async def listener(self, user_id: str) -> Listener:
        """A new listener for ``user_id``'s changes, subscribed before this returns."""
        await self._started()
        listener = Listener(self, user_id)
        self._listeners.setdefault(user_id, set()).add(listener)
        return listener

    async def work_listener(self, types: frozenset[str] | None) -> Listener:
        """A new listener for jobs of ``types`` (None: any) that become pending."""
        await self._started()
        listener = Listener(self, None, types)
        self._work_listeners.add(listener)
        return listener

    async def _started(self) -> None:
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._run(), name="jobdesk-sse-broadcaster")
        try:
            await asyncio.wait_for(self._ready.wait(), _READY_TIMEOUT)
        except TimeoutError:
            raise StoreUnavailable("the change feed did not start in time") from None

    def remove(self, listener: Listener) -> None:
        """Forget ``listener``."""
        if listener.user_id is None:
            self._work_listeners.discard(listener)
            return
        group = self._listeners.get(listener.user_id)
        if group is not None:
            group.discard(listener)
            if not group:
                del self._listeners[listener.user_id]

    def _signal(self, signal: Signal) -> None:
        for group in list(self._listeners.values()):
            for listener in list(group):
                listener.offer(signal)
        for listener in list(self._work_listeners):
            listener.offer(signal)

    async def _run(self) -> None:
        try:
            async with self._desk.subscribe() as changes:
                self._ready.set()
                async for change in changes:
                    if isinstance(change, JobChange):
                        for listener in self._listeners.get(change.user_id, ()):
                            listener.offer(change)
                        if change.status is JobStatus.PENDING:
                            for listener in self._work_listeners:
                                if listener.types is None or change.type in listener.types:
                                    listener.offer(change)
                    else:
                        self._signal(Signal.RESYNC)
        except Exception:
            _log.exception("the change feed stopped; open streams end and clients reconnect")
        finally:
            self._ready.clear()
            self._signal(Signal.CLOSED)

    async def close(self) -> None:
        """Stop the feed; open streams end."""
        await self.guards.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

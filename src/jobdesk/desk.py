"""JobDesk: every jobdesk operation, async, over one store.

The host application authenticates its users; jobdesk authorises: every user
operation names the acting ``user_id`` and sees only that user's jobs. Worker
operations need the :class:`~jobdesk.models.Worker` that ``verify_worker_token``
returns. Arguments are validated before anything reaches the store.

This module owns the desk's life (open, start, close, the clock, signing keys,
the change feed); the operations live one concept per module and are mixed in:

- :mod:`jobdesk.user_operations`: create, list, get, cancel, retry, usage, limits;
- :mod:`jobdesk.group_operations`: groups of jobs (built on the user operations);
- :mod:`jobdesk.view_operations`: view tokens, a browser's read-only grant (on groups);
- :mod:`jobdesk.worker_operations`: verify, claim, progress, complete, fail, release;
- :mod:`jobdesk.operator_queries`: stats, throughput, failed jobs, reaper, prune;
- :mod:`jobdesk.token_operations`: worker, user and admin tokens;
- :mod:`jobdesk.schedule_operations`: schedules (jobs made on a cron schedule).
- :mod:`jobdesk.webhook_operations`: webhooks and the sender of their outbox.
"""

from __future__ import annotations

from collections.abc import Collection, Generator
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import Any

from jobdesk import validation
from jobdesk.changes import Subscription
from jobdesk.errors import InvalidInput
from jobdesk.limits import Limits
from jobdesk.operator_queries import OperatorQueries
from jobdesk.schedule_operations import ScheduleOperations
from jobdesk.store import Clock, Store, open_store
from jobdesk.token_operations import TokenOperations
from jobdesk.view_operations import ViewOperations
from jobdesk.webhook_operations import WebhookOperations
from jobdesk.worker_operations import WorkerOperations

__all__ = ["DEFAULT_URL", "JobDesk"]

DEFAULT_URL = "sqlite:///jobdesk.db"


class JobDesk(
    ViewOperations,
    WorkerOperations,
    OperatorQueries,
    TokenOperations,
    WebhookOperations,
    ScheduleOperations,
):
    """The jobdesk operations over one store. Open with :meth:`JobDesk.open`."""

    def __init__(
        self,
        store: Store,
        *,
        limits: Limits | None = None,
        types: Collection[str] | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.types = None if types is None else validation.job_types(types, field="types")
        self._secret = b""

    @classmethod
    def open(
        cls,
        url: str = DEFAULT_URL,
        *,
        limits: Limits | None = None,
        types: Collection[str] | None = None,
        clock: Clock | None = None,
    ) -> _Opening:
        """Open a desk on a database URL, applying pending migrations.

        Use as ``async with JobDesk.open(url) as desk:`` or ``desk = await
        JobDesk.open(url)`` followed by ``await desk.close()``. ``types`` registers
        the job types that ``create_job`` accepts; ``clock`` replaces the store's
        clock (tests use it to move time).
        """
        if limits is not None and not isinstance(limits, Limits):
            raise InvalidInput("limits", "must be a jobdesk.Limits")
        return _Opening(cls(open_store(url, clock=clock), limits=limits, types=types))

    async def start(self) -> None:
        """Open the store (connect, migrate). :meth:`open` does this for you."""
        await self.store.open()
        self._secret = await self.store.secret()

    async def close(self) -> None:
        """Close the store's connections."""
        await self.store.close()

    async def now(self) -> datetime:
        """The store's clock: the time every rule is judged by (a test's manual clock too)."""
        return await self.store.now()

    async def __aenter__(self) -> JobDesk:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> None:
        """One round trip to the database: :class:`~jobdesk.errors.StoreUnavailable` if down."""
        await self.store.ping()

    def subscribe(self, *, ready_only: bool = False) -> AbstractAsyncContextManager[Subscription]:
        """Live job changes, for ``async with desk.subscribe() as changes:``.

        On PostgreSQL every process's changes arrive (LISTEN/NOTIFY); on SQLite,
        this process's. Notifications speed things up; they are not a guarantee:
        after :data:`jobdesk.changes.RESYNC`, re-read. ``ready_only=True`` is for
        workers waiting for work: the changes of jobs that became pending are
        enough (others may be left out; on PostgreSQL they are, which spares a busy
        worker's process from reading every change of every job).
        """
        if not isinstance(ready_only, bool):
            raise InvalidInput("ready_only", "must be true or false")
        return self.store.subscribe(ready_only=ready_only)


class _Opening:
    """What :meth:`JobDesk.open` returns: await it, or use it with ``async with``."""

    def __init__(self, desk: JobDesk) -> None:
        self._desk = desk

    def __await__(self) -> Generator[Any, None, JobDesk]:
        return self._open().__await__()

    async def _open(self) -> JobDesk:
        await self._desk.start()
        return self._desk

    async def __aenter__(self) -> JobDesk:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._desk.close()

"""The SQLite store's connection: one file, one connection, one thread.

Opening sets WAL mode and the durability asked for, and applies pending
migrations (many processes may open one new file at once: each migration is
applied exactly once). Every operation runs on the store's one thread;
:meth:`SQLiteConnection._write` wraps it in ``BEGIN IMMEDIATE`` ... ``COMMIT``.
Changes made by other processes are noticed through ``PRAGMA data_version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Self, TypeVar

from jobdesk.changes import RESYNC, ChangeHub, Subscription
from jobdesk.errors import InvalidInput, JobdeskError, StoreUnavailable
from jobdesk.store import Clock
from jobdesk.store.common import load_migrations, load_queries, system_clock

__all__ = ["Q", "SQLiteConnection", "data_version", "migrations", "statements"]

T = TypeVar("T")
#: the named queries of ``sqlite.sql``
Q = load_queries("jobdesk.store", "sqlite.sql")
_SYNCHRONOUS = {"full", "normal", "extra", "off"}
_WATCH_SECONDS = 0.01


def statements(script: str) -> list[str]:
    """A migration script as its statements, one per ``execute``."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]}")
    return statements


def migrations() -> list[tuple[int, str]]:
    """``(version, script)`` of every SQLite migration, in order."""
    return load_migrations("sqlite")


def data_version(connection: sqlite3.Connection) -> int:
    """SQLite's counter of commits made by *other* connections to this file."""
    (version,) = connection.execute("PRAGMA data_version").fetchone()
    return int(version)


class SQLiteConnection:
    """The plumbing :class:`~jobdesk.store.sqlite.SQLiteStore` runs its operations on."""

    def __init__(
        self,
        path: str,
        *,
        clock: Clock | None = None,
        synchronous: str = "full",
        busy_timeout: float = 10.0,
    ) -> None:
        if synchronous.lower() not in _SYNCHRONOUS:
            raise InvalidInput("synchronous", f"must be one of {sorted(_SYNCHRONOUS)}")
        self.path = path
        self._clock = clock or system_clock
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._secret = b""
        self.hub = ChangeHub()
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> Self:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite:///:memory:``.

        Query options: ``synchronous`` (``full``, the default, makes every
        acknowledged write survive a power cut; ``normal`` survives a process crash
        only) and ``busy_timeout`` in seconds.
        """
        if not url.startswith("sqlite:///"):
            raise InvalidInput("url", "must look like sqlite:///path/to/jobdesk.db")
        path, _, query = url[len("sqlite:///") :].partition("?")
        if not path:
            raise InvalidInput("url", "must name a file: sqlite:///path/to/jobdesk.db")
        options: dict[str, str] = {}
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            options[key] = value
        unknown = set(options) - {"synchronous", "busy_timeout"}
        if unknown:
            raise InvalidInput(
                "url", f"unknown options {sorted(unknown)}; allowed: synchronous, busy_timeout"
            )
        try:
            busy_timeout = float(options.get("busy_timeout", "10"))
        except ValueError:
            busy_timeout = -1.0
        if not 0 <= busy_timeout < 3600:
            raise InvalidInput("url", "busy_timeout must be a number of seconds from 0 to 3600")
        return cls(
            path,
            clock=clock,
            synchronous=options.get("synchronous", "full"),
            busy_timeout=busy_timeout,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
            check_same_thread=False,  # only ever used from self._executor's one thread
        )
        connection.row_factory = sqlite3.Row
        try:
            # Switching a new file to WAL needs an exclusive lock that the busy timeout
            # does not always wait for; a file already in WAL needs nothing.
            self._retry_when_locked(lambda: self._enable_wal(connection))
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")  # allow-listed
            connection.execute("PRAGMA foreign_keys = ON")
            self._retry_when_locked(lambda: self._migrate(connection))
            (self._secret,) = connection.execute(Q["select_secret"]).fetchone()
        except BaseException:
            connection.close()
            raise
        return connection

    @staticmethod
    def _enable_wal(connection: sqlite3.Connection) -> None:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            connection.execute("PRAGMA journal_mode = WAL")

    def _retry_when_locked(self, step: Callable[[], None]) -> None:
        # Many processes opening one new file at once can see "database is locked"
        # sooner than the busy timeout; opening is idempotent, so try again a while.
        deadline = time.monotonic() + max(self._busy_timeout, 1.0) * 3
        delay = 0.01
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)  # the store's own thread, before it serves anything
                delay = min(delay * 2, 0.5)

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE first, then read the version: two processes opening one new
        # file at once apply each migration exactly once.
        connection.execute("BEGIN IMMEDIATE")
        try:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            for number, script in migrations():
                if number > version:
                    for statement in statements(script):
                        connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {int(number)}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._connection is None:
            raise StoreUnavailable("the store is not open: use JobDesk.open(...) first")
        connection = self._connection
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work, connection)
        except JobdeskError:
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite database {self.path!r}: {exc}") from exc

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def transaction(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        return await self._run(transaction)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run several reads on one snapshot (a deferred transaction: no write lock)."""

        def transaction(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN")
            try:
                return work(connection)
            finally:
                connection.execute("COMMIT")

        return await self._run(transaction)

    async def open(self) -> None:
        """Open the file (creating it), set WAL, and apply pending migrations."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobdesk-sqlite")
        loop = asyncio.get_running_loop()
        try:
            self._connection = await loop.run_in_executor(self._executor, self._connect)
        except sqlite3.Error as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
                # Another kind of file: trying again will not help, the URL is wrong.
                raise InvalidInput("url", f"is not an SQLite database ({exc})") from exc
            raise StoreUnavailable(f"cannot open SQLite database {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection and stop the store's thread."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        executor, connection = self._executor, self._connection
        self._executor, self._connection = None, None
        if executor is None:
            return
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        executor.shutdown(wait=True)

    async def now(self) -> datetime:
        """This machine's clock (or the injected one): SQLite runs on one machine."""
        return self._clock()

    async def secret(self) -> bytes:
        """The random secret made by the first migration."""
        return bytes(self._secret)

    @contextlib.asynccontextmanager
    async def subscribe(self, *, ready_only: bool = False) -> AsyncIterator[Subscription]:
        """Changes: this store's own as they commit; other processes' as ``RESYNC``.

        ``ready_only`` changes nothing here: every change comes (in process, they cost
        little), among them the jobs that became pending.

        While anyone is subscribed, the store checks ``PRAGMA data_version`` every
        10 ms; it moves only when another connection (another process, say a worker)
        committed, and then subscribers get :data:`~jobdesk.changes.RESYNC` and re-read.
        """
        async with self.hub.subscribe() as subscription:
            if self._watcher is None or self._watcher.done():
                # The baseline is read before the subscriber gets control, so a commit
                # made by another connection right after subscribing is never missed.
                last = await self._run(data_version)
                if self._watcher is None or self._watcher.done():  # still, after the await
                    self._watcher = asyncio.create_task(
                        self._watch(last), name="jobdesk-sqlite-watch"
                    )
            yield subscription

    async def _watch(self, last: int) -> None:
        try:
            while self.hub.subscriber_count:
                await asyncio.sleep(_WATCH_SECONDS)
                version = await self._run(data_version)
                if version != last:
                    last = version
                    self.hub.publish(RESYNC)
        except StoreUnavailable:
            return  # the store closed

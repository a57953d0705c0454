"""The PostgreSQL store's connections: pool, transactions, migrations, clock, secret.

Connections are in autocommit: an operation of one statement (a read, a claim, a
create, which calls the ``jobdesk.create_job`` function) is one round trip that
commits by itself; the others run between ``BEGIN`` and ``COMMIT``.

A connection lost before COMMIT was sent leaves nothing applied, and the
operation is tried once more on a fresh connection. A connection lost during
COMMIT (or during a one-statement write) leaves the outcome unknown: that
surfaces as :class:`~jobdesk.errors.StoreUnavailable` saying so, except for a
create, which finds out by looking for its job's id and tries again if needed.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from jobdesk.changes import Subscription
from jobdesk.errors import InvalidInput, JobdeskError, StoreUnavailable
from jobdesk.store import Clock
from jobdesk.store.common import load_migrations, load_queries
from jobdesk.store.postgres_channel import CHANNEL, READY_CHANNEL, Channel
from jobdesk.store.postgres_rows import Row

__all__ = ["Connection", "PostgresConnections", "Q", "check_still_open", "migrations"]

T = TypeVar("T")
Connection = psycopg.AsyncConnection[Row]
#: the named queries of ``postgres.sql``
Q = load_queries("jobdesk.store", "postgres.sql")
_MIGRATION_LOCK = 0x6A6F626465736B  # "jobdesk": one advisory lock id for every migrator
_POOL_OPTIONS = {"pool_min": 1, "pool_max": 10}
_log = logging.getLogger("jobdesk.store.postgres")


def check_still_open(connection: Connection) -> None:
    """Read what the server sent a pooled connection while it was idle, without a round trip.

    A connection the server closed (restart, ``pg_terminate_backend``) fails here,
    before anything was sent, so the operation can safely be tried again.
    """
    connection.pgconn.consume_input()
    if connection.pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError("the server closed the connection")


def migrations() -> list[tuple[int, str]]:
    """``(version, script)`` of every PostgreSQL migration, in order."""
    return load_migrations("postgres")


class PostgresConnections:
    """The plumbing :class:`~jobdesk.store.postgres.PostgresStore` runs its operations on."""

    def __init__(
        self,
        conninfo: str,
        *,
        clock: Clock | None = None,
        pool_min: int = 1,
        pool_max: int = 10,
    ) -> None:
        self.conninfo = conninfo
        self._clock = clock
        self._pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            conninfo,
            connection_class=Connection,
            min_size=pool_min,
            max_size=pool_max,
            kwargs={"row_factory": dict_row, "options": "-c timezone=UTC", "autocommit": True},
            open=False,
        )
        self._secret = b""
        self._changes = Channel(conninfo, CHANNEL)
        self._ready = Channel(conninfo, READY_CHANNEL)
        #: where this process's subscribers to every change get them
        self.hub = self._changes.hub

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> Self:
        """``postgresql://user:password@host:port/database?pool_min=1&pool_max=10``.

        ``pool_min``/``pool_max`` size this process's connection pool; every other
        query option is passed to libpq (``sslmode``, ``connect_timeout``...).
        """
        parts = urlsplit(url)
        if parts.scheme not in {"postgresql", "postgres"}:
            raise InvalidInput("url", "must look like postgresql://user@host:5432/database")
        options: dict[str, int] = {}
        passed: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query):
            if key in _POOL_OPTIONS:
                try:
                    options[key] = int(value)
                except ValueError:
                    raise InvalidInput("url", f"{key} must be an integer") from None
            else:
                passed.append((key, value))
        pool_min = options.get("pool_min", _POOL_OPTIONS["pool_min"])
        pool_max = options.get("pool_max", max(pool_min, _POOL_OPTIONS["pool_max"]))
        if not 0 <= pool_min <= pool_max or pool_max < 1:
            raise InvalidInput(
                "url", "pool sizes must satisfy 0 <= pool_min <= pool_max, 1 <= pool_max"
            )
        conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(passed)))
        return cls(conninfo, clock=clock, pool_min=pool_min, pool_max=pool_max)

    # -- plumbing ---------------------------------------------------------------------------

    def _now_param(self) -> datetime | None:
        return None if self._clock is None else self._clock()

    async def _run(
        self,
        work: Callable[[Connection], Awaitable[T]],
        *,
        write: bool = True,
        single: bool = False,
        done: Callable[[Connection], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``work`` in one transaction; once more if the connection broke before COMMIT.

        ``single``: ``work`` runs one statement, which commits by itself (autocommit),
        saving the round trips of ``BEGIN`` and ``COMMIT``; a one-statement write that
        broke has an unknown outcome, unless ``done`` tells, on a fresh connection,
        whether it took effect (its result) or not (``None``: ``work`` runs again).
        """
        retried = False
        for try_number in (1, 2):
            committing = False
            try:
                # No pipeline mode: measured here it cost more client time than the round
                # trips it saved, and a connection lost mid-pipeline left psycopg's
                # pipeline to be finalised later, noisily.
                async with self._pool.connection() as connection:
                    check_still_open(connection)
                    if retried and done is not None:
                        settled = await done(connection)
                        if settled is not None:
                            return settled
                    if single:
                        committing = write and done is None
                        return await work(connection)
                    async with connection.transaction():
                        result = await work(connection)
                        committing = write
                    return result
            except JobdeskError:
                raise
            except psycopg.OperationalError as exc:
                if committing:
                    raise StoreUnavailable(
                        "the connection to PostgreSQL broke while committing, so the outcome "
                        "is unknown: read the job back before trying again",
                        outcome_unknown=True,
                    ) from exc
                if try_number == 2:
                    raise StoreUnavailable(f"PostgreSQL is unreachable: {exc}") from exc
                _log.warning("PostgreSQL connection lost before commit; trying once more: %s", exc)
                retried = True
                # After a server restart every pooled connection is dead: drop them all
                # so the second try gets a fresh one.
                with contextlib.suppress(psycopg.Error, PoolTimeout):
                    await self._pool.check()
            except psycopg.Error as exc:
                raise StoreUnavailable(f"PostgreSQL refused the operation: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch_one(
        self, connection: Connection, query: str, params: dict[str, Any]
    ) -> Row | None:
        cursor = await connection.execute(query, params)
        return await cursor.fetchone()

    async def open(self) -> None:
        """Open the pool and apply pending migrations (one process at a time)."""
        try:
            await self._pool.open(wait=True, timeout=30)
        except (psycopg.Error, PoolTimeout) as exc:
            await self._pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self._safe_url()}") from exc
        await self._run(self._migrate)
        self._secret = await self._run(self._read_secret, write=False)

    def _safe_url(self) -> str:
        parts = urlsplit(self.conninfo)
        host = parts.hostname or "localhost"
        return f"{host}:{parts.port or 5432}{parts.path}"

    async def _migrate(self, connection: Connection) -> None:
        # The advisory lock makes concurrent starters apply each migration exactly once.
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await connection.execute("CREATE SCHEMA IF NOT EXISTS jobdesk")
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS jobdesk.migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await connection.execute("SELECT version FROM jobdesk.migrations")
        applied = {row["version"] for row in await cursor.fetchall()}
        for version, script in migrations():
            if version not in applied:
                await connection.execute(script.encode())
                await connection.execute(
                    "INSERT INTO jobdesk.migrations (version) VALUES (%s)", (version,)
                )
        await connection.execute(
            "INSERT INTO jobdesk.meta (key, value) VALUES ('secret', %s) ON CONFLICT DO NOTHING",
            (secrets.token_bytes(32),),
        )

    async def _read_secret(self, connection: Connection) -> bytes:
        row = await self._fetch_one(connection, Q["select_secret"], {})
        assert row is not None
        return bytes(row["value"])

    async def close(self) -> None:
        """Stop listening and close every connection."""
        await self._changes.close()
        await self._ready.close()
        await self._pool.close()

    async def now(self) -> datetime:
        """The database's ``now()`` (or the injected clock)."""

        async def work(connection: Connection) -> datetime:
            row = await self._fetch_one(connection, Q["now"], {"now": self._now_param()})
            assert row is not None
            value: datetime = row["coalesce"]
            return value

        return await self._run(work, write=False, single=True)

    async def secret(self) -> bytes:
        """The random secret stored by the first start."""
        return self._secret

    # -- change notifications ---------------------------------------------------------------

    def subscribe(self, *, ready_only: bool = False) -> AbstractAsyncContextManager[Subscription]:
        """Changes made by every process, as NOTIFY delivers them; starts listening if needed.

        ``ready_only`` listens only for jobs that became pending (a channel of their own):
        a worker's process then reads one notification per job, not one per change.
        """
        return (self._ready if ready_only else self._changes).subscribe()

    async def _fetch_all(
        self, query: str, params: dict[str, Any], connection: Connection
    ) -> list[Row]:
        cursor = await connection.execute(query, params)
        return await cursor.fetchall()

    async def _fetch_value(self, query: str, params: dict[str, Any], connection: Connection) -> Any:
        cursor = await connection.execute(query, params)
        row = await cursor.fetchone()
        assert row is not None
        return next(iter(row.values()))

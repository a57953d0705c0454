"""A process that dies in the middle of an SQLite transaction: ``python -m tests.faults.crasher``.

    python -m tests.faults.crasher sqlite:///path.db MARKER USER [USER ...]

It opens the database with jobdesk's own ``SQLiteStore`` and wraps the store's
write path (``SQLiteStore._write``: ``BEGIN IMMEDIATE``, the work, ``COMMIT``) so
that, once the work of a write has run and before its ``COMMIT``, it writes
enough more (history rows of the new job, on a small page cache) for SQLite to
spill uncommitted pages into the WAL file, writes the ``MARKER`` file (the job it
created, as JSON) and sleeps. Then it creates one job
for the first of the ``USER`` s whose limits allow it, under the idempotency key
named by the marker's file name. The nemesis waits for the marker and kills the
process with SIGKILL: the transaction holds the write lock and a row that must
never be seen.

The users are the experiment's: a row that survived the crash would be a job no
client created, which the checker reports as unexpected.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from jobdesk import JobDesk
from jobdesk.errors import RateLimited, StoreUnavailable
from jobdesk.store.sqlite import SQLiteStore
from tests.faults.app import JOB_TYPE

T = TypeVar("T")
#: how long the crasher keeps trying users before it gives up (the nemesis reports it)
GIVE_UP_SECONDS = 20.0
#: rows of 1 kB written after the work: far more than the page cache holds
SPILL_ROWS = 400
#: the page cache, in pages: small, so that the transaction spills into the WAL
CACHE_PAGES = 16


class _Write(Protocol):
    """The shape of ``SQLiteStore._write``."""

    def __call__(self, work: Callable[[sqlite3.Connection], T]) -> Coroutine[Any, Any, T]: ...


def hang_before_commit(store: SQLiteStore, marker: Path, key: str) -> _Write:
    """``store._write``, stopping for good between the work and the ``COMMIT``."""

    async def write(work: Callable[[sqlite3.Connection], T]) -> T:
        def transaction(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            rows = connection.execute(
                "SELECT id, user_id FROM jobs WHERE idempotency_key = ?", (key,)
            ).fetchall()
            if rows:  # the create's work ran: this is the moment to die in
                connection.executemany(
                    "INSERT INTO job_events (job_id, at, status, attempt, error) "
                    "VALUES (?, '', 'pending', 0, ?)",
                    [(rows[0][0], "x" * 1000)] * SPILL_ROWS,
                )
                written = marker.with_suffix(".partial")
                written.write_text(json.dumps({"job": rows[0][0], "user": rows[0][1]}))
                os.replace(written, marker)
                time.sleep(3600)  # the nemesis's SIGKILL lands here
            connection.execute("COMMIT")
            return result

        return await store._run(transaction)

    return write


async def crash(url: str, marker: Path, users: list[str]) -> None:
    """Create one job under a write that never commits; returns only if no user had room."""
    async with JobDesk.open(url) as desk:
        store = desk.store
        assert isinstance(store, SQLiteStore), "the crasher is for SQLite"
        key = marker.stem
        await store._run(
            lambda connection: connection.execute(f"PRAGMA cache_size = {CACHE_PAGES}")
        )
        store._write = hang_before_commit(store, marker, key)  # type: ignore[method-assign]
        deadline = time.monotonic() + GIVE_UP_SECONDS
        payload: dict[str, Any] = {"seconds": 0.01}
        while time.monotonic() < deadline:
            for user in users:
                try:
                    await desk.create_job(user, JOB_TYPE, payload, idempotency_key=key)
                except (RateLimited, StoreUnavailable):  # no room, or the file stayed busy
                    continue
            await asyncio.sleep(0.05)
    sys.exit("every user stayed at their limit: no transaction to die in")


if __name__ == "__main__":
    asyncio.run(crash(sys.argv[1], Path(sys.argv[2]), sys.argv[3:]))

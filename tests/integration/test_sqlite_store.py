"""SQLite only: migrations at open, across processes, and reopening an existing file.

These tests look inside the file with ``sqlite3`` (the schema version, the secret
row, the journal mode), so they run on SQLite only; everything else in this folder
runs on every store.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from jobdesk import JobDesk, JobStatus
from jobdesk.changes import RESYNC, JobChange
from jobdesk.store.sqlite import migrations
from jobdesk.testing import ManualClock

#: the schema version of a fully migrated file
LATEST = migrations()[-1][0]

# Opens a desk on argv[1] and creates a job for user argv[2], but only once the
# parent writes a line: every process is started (and has imported jobdesk) before
# any of them touches the file, so their migrations race for real.
OPEN_AND_CREATE = """
import asyncio
import sys

from jobdesk import JobDesk


async def main(url: str, user_id: str) -> None:
    async with JobDesk.open(url) as desk:
        job = await desk.create_job(user_id, "migration.check", {"by": user_id})
        print(job.id)


sys.stdin.readline()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""

PROCESSES = 4
TIMEOUT = 60


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def inspect(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(query).fetchall()


def open_at_once(path: Path, count: int) -> list[str]:
    """Start ``count`` processes that open one database together; their job ids."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_CREATE, sqlite_url(path), f"process-{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    try:
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=TIMEOUT) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    return [stdout.strip() for stdout, _ in outputs]


@pytest.mark.parametrize("round_number", range(3))
def test_processes_opening_a_new_file_at_once_migrate_it_once(
    tmp_path: Path, round_number: int
) -> None:
    path = tmp_path / f"race-{round_number}.db"
    job_ids = open_at_once(path, PROCESSES)
    assert len(set(job_ids)) == PROCESSES
    assert inspect(path, "PRAGMA user_version") == [(LATEST,)]
    assert inspect(path, "SELECT count(*) FROM meta WHERE key = 'secret'") == [(1,)]
    assert inspect(path, "PRAGMA journal_mode") == [("wal",)]
    stored = inspect(path, "SELECT id, user_id FROM jobs ORDER BY user_id")
    assert stored == sorted(
        ((job_id, f"process-{n}") for n, job_id in enumerate(job_ids)), key=lambda row: row[1]
    )


def test_a_new_file_gets_the_schema_at_open(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    open_at_once(path, 1)
    tables = {row[0] for row in inspect(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "job_events", "users", "tokens", "meta"} <= tables
    assert inspect(path, "PRAGMA user_version") == [(LATEST,)]


async def test_reopening_a_file_keeps_its_jobs_tokens_limits_and_cursors(
    tmp_path: Path, clock: ManualClock
) -> None:
    url = sqlite_url(tmp_path / "kept.db")
    async with JobDesk.open(url, clock=clock) as desk:
        await desk.set_user_limits("alice", max_running=20)
        jobs = [await desk.create_job("alice", "demo", {"n": n}) for n in range(15)]
        token = await desk.create_worker_token("gpu-box-1")
        worker = await desk.verify_worker_token(token)
        [claimed] = await desk.claim_jobs(worker)
        first_page = await desk.get_user_jobs("alice", limit=10)
        secret_before = inspect(tmp_path / "kept.db", "SELECT value FROM meta")

    async with JobDesk.open(url, clock=clock) as desk:
        assert (await desk.get_user_usage("alice")).max_running == 20
        assert (await desk.verify_worker_token(token)).name == "gpu-box-1"
        stored = await desk.get_job_status(claimed.id, "alice")
        assert stored == claimed
        second_page = await desk.get_user_jobs("alice", limit=10, cursor=first_page.next_cursor)
        listed = [job.id for job in first_page.items + second_page.items]
        assert listed == [job.id for job in reversed(jobs)]
        done = await desk.complete_job(worker, claimed.id, "after reopen", attempt=claimed.attempt)
        assert done.status is JobStatus.COMPLETED
    assert inspect(tmp_path / "kept.db", "PRAGMA user_version") == [(LATEST,)]
    assert inspect(tmp_path / "kept.db", "SELECT value FROM meta") == secret_before


def test_reopening_from_other_processes_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first = open_at_once(path, 2)
    second = open_at_once(path, 2)
    rows = inspect(path, "SELECT id FROM jobs")
    assert sorted(str(row[0]) for row in rows) == sorted(first + second)
    assert inspect(path, "PRAGMA user_version") == [(LATEST,)]


async def test_a_commit_from_another_connection_wakes_subscribers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with (
        JobDesk.open(url) as listener,
        JobDesk.open(url) as other,
        listener.subscribe() as changes,
    ):
        await other.create_job("user-1", "render", {})
        assert await asyncio.wait_for(changes.next_change(), 5) is RESYNC
        own = await listener.create_job("user-1", "render", {})
        change = await asyncio.wait_for(changes.next_change(), 5)
        assert isinstance(change, JobChange)
        assert change.job_id == own.id
        assert await changes.next_change(within=0.2) is None  # no RESYNC for its own write

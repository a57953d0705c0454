"""SQLite only: the fair scheduler's state (``waiting`` counts, clocks, type gates) as
the store keeps it, its migration, and refusals that must write nothing.

The shared contract tests (``test_fair_scheduling.py``) hold both stores to the same
behaviour; these look inside the SQLite file, where the store's bookkeeping must agree
with its jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobdesk import JobDesk, JobStatus, Limits, Worker
from jobdesk.errors import InvalidTransition, JobdeskError
from jobdesk.store.sqlite_connection import migrations, statements
from jobdesk.testing import ManualClock


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "jobdesk.db"


@pytest.fixture
async def desk(path: Path, clock: ManualClock) -> AsyncIterator[JobDesk]:
    async with JobDesk.open(f"sqlite:///{path}", clock=clock) as opened:
        yield opened


@pytest.fixture
async def worker(desk: JobDesk) -> Worker:
    return await desk.verify_worker_token(await desk.create_worker_token("worker-1"))


def query(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as database:
        return [tuple(row) for row in database.execute(sql, params)]


def assert_waiting_counts_match_the_jobs(path: Path) -> None:
    """Every user's stored ``waiting`` is the number of their pending jobs."""
    stored = query(path, "SELECT user_id, waiting FROM users WHERE waiting <> 0 ORDER BY 1")
    counted = query(
        path,
        "SELECT user_id, count(*) FROM jobs WHERE status = 'pending' GROUP BY user_id ORDER BY 1",
    )
    assert stored == counted


async def test_waiting_follows_every_move_into_and_out_of_pending(
    desk: JobDesk, worker: Worker, path: Path, clock: ManualClock
) -> None:
    jobs = [await desk.create_job("alice", "demo", {"n": n}) for n in range(4)]
    assert_waiting_counts_match_the_jobs(path)
    await desk.cancel_job(jobs[0].id, "alice")
    assert_waiting_counts_match_the_jobs(path)
    first, second = await desk.claim_jobs(worker, limit=2)
    assert_waiting_counts_match_the_jobs(path)
    await desk.fail_job(worker, first.id, "flaky", attempt=first.attempt)  # retryable
    assert_waiting_counts_match_the_jobs(path)
    await desk.release_job(worker, second.id, attempt=second.attempt)
    assert_waiting_counts_match_the_jobs(path)
    await desk.retry_job(jobs[0].id, "alice")
    assert_waiting_counts_match_the_jobs(path)
    (third,) = await desk.claim_jobs(worker, limit=1)
    await desk.snooze_job(worker, third.id, 60, attempt=third.attempt)
    assert_waiting_counts_match_the_jobs(path)
    (fourth,) = await desk.claim_jobs(worker, limit=1)
    clock.advance(seconds=Limits().lease_seconds + 1)
    assert await desk.requeue_expired() == 1
    assert_waiting_counts_match_the_jobs(path)
    assert (await desk.get_job_status(fourth.id, "alice")).status is JobStatus.PENDING
    usage = await desk.get_user_usage("alice")
    assert (usage.waiting, usage.running) == (4, 0)


async def random_move(
    desk: JobDesk, worker: Worker, clock: ManualClock, chance: random.Random, user: str
) -> None:
    """One of the moves into or out of ``pending`` (or time passing), chosen by ``chance``."""
    move = chance.randrange(7)
    if move == 0:
        await desk.create_job(user, "demo", {}, priority=chance.randrange(3))
    elif move == 1:
        for job in await desk.claim_jobs(worker, limit=chance.randint(1, 3)):
            if chance.random() < 0.5:
                await desk.complete_job(worker, job.id, attempt=job.attempt)
            else:
                await desk.fail_job(worker, job.id, "flaky", attempt=job.attempt)
    elif move == 5:
        await desk.requeue_expired()
    elif move == 6:
        clock.advance(seconds=chance.choice([1, 10, 400]))
    else:
        statuses = {2: ["pending", "processing"], 3: ["failed", "cancelled"], 4: ["pending"]}
        page = await desk.get_user_jobs(user, status=statuses[move])
        if not page.items:
            return
        job_id = chance.choice(page.items).id
        if move == 2:
            await desk.cancel_job(job_id, user)
        elif move == 3:
            await desk.retry_job(job_id, user)
        else:
            await desk.start_job(worker, job_id)


async def test_waiting_counts_hold_through_a_random_mix_of_operations(
    desk: JobDesk, worker: Worker, path: Path, clock: ManualClock
) -> None:
    chance = random.Random(14)
    await desk.set_user_limits("ben", max_running=2, max_waiting=6)
    refused = 0
    for _ in range(200):
        try:
            await random_move(desk, worker, clock, chance, chance.choice(["ann", "ben", "cat"]))
        except JobdeskError:
            refused += 1  # refusals (limits, transitions) must leave the counts right too
        assert_waiting_counts_match_the_jobs(path)
    assert refused > 0


async def test_a_user_who_comes_back_starts_level_with_those_waiting(
    desk: JobDesk, worker: Worker, path: Path
) -> None:
    for n in range(6):
        await desk.create_job("heavy", "demo", {"n": n})
    await desk.claim_jobs(worker, limit=4)  # heavy's clock is now 4
    await desk.create_job("newcomer", "demo", {})
    clocks = query(path, "SELECT user_id, vtime FROM users ORDER BY 1")
    assert clocks == [("heavy", 4.0), ("newcomer", 4.0)]
    # A user who already waits keeps their clock when more of their jobs arrive.
    await desk.create_job("newcomer", "demo", {})
    assert query(path, "SELECT vtime FROM users WHERE user_id = 'newcomer'") == [(4.0,)]


async def test_a_refused_start_by_id_writes_nothing(
    desk: JobDesk, worker: Worker, path: Path
) -> None:
    await desk.set_user_limits("alice", max_running=1)
    first = await desk.create_job("alice", "demo", {})
    second = await desk.create_job("alice", "demo", {})
    await desk.start_job(worker, first.id)
    before = query(path, "SELECT * FROM users")
    with pytest.raises(
        InvalidTransition, match=r"alice already has 1 jobs running \(max_running 1\)"
    ):
        await desk.start_job(worker, second.id)
    assert query(path, "SELECT * FROM users") == before
    assert (await desk.get_job_status(second.id, "alice")).status is JobStatus.PENDING


async def test_a_refused_retry_writes_nothing_and_the_batchs_others_commit(
    desk: JobDesk, path: Path
) -> None:
    await desk.set_user_limits("alice", max_waiting=1)
    job = await desk.create_job("alice", "demo", {})
    await desk.cancel_job(job.id, "alice")
    await desk.create_job("alice", "demo", {})
    before = query(path, "SELECT * FROM users")
    with pytest.raises(JobdeskError, match="pending jobs"):
        await desk.retry_job(job.id, "alice")
    assert query(path, "SELECT * FROM users") == before


async def test_a_rate_removed_forgets_its_next_start_and_no_limits_remove_the_row(
    desk: JobDesk, worker: Worker, path: Path
) -> None:
    await desk.set_type_limits("gpu", max_running=2, rate="1/min")
    await desk.create_job("alice", "gpu", {})
    await desk.claim_jobs(worker)
    ((next_start,),) = query(path, "SELECT next_start_at FROM type_limits")
    assert isinstance(next_start, str)  # ISO text, as every time in the file
    await desk.set_type_limits("gpu", max_running=2, rate="1/min")
    assert query(path, "SELECT next_start_at FROM type_limits") == [(next_start,)]
    await desk.set_type_limits("gpu", max_running=2)
    assert query(path, "SELECT next_start_at, rate_count FROM type_limits") == [(None, None)]
    await desk.set_type_limits("gpu")
    assert query(path, "SELECT * FROM type_limits") == []


def test_migrating_a_version_3_file_carries_caps_over_and_counts_waiting(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as database:
        for number, script in migrations():
            if number <= 3:
                for statement in statements(script):
                    database.execute(statement)
        database.execute("PRAGMA user_version = 3")
        database.executemany(
            "INSERT INTO users (user_id, max_active, max_daily) VALUES (?, ?, ?)",
            [("alice", 25, None), ("bob", None, 50)],
        )
        jobs = [
            ("j1", "alice", "pending"),
            ("j2", "alice", "pending"),
            ("j3", "alice", "processing"),
        ]
        jobs += [("j4", "bob", "completed")]
        database.executemany(
            "INSERT INTO jobs (id, user_id, type, status, input, max_attempts, created_at, run_at,"
            " updated_at) VALUES (?, ?, 'demo', ?, '{}', 3, '2026-01-01', '2026-01-01',"
            " '2026-01-01')",
            jobs,
        )
        database.commit()

    async def open_it() -> None:
        async with JobDesk.open(f"sqlite:///{path}"):
            pass

    asyncio.run(open_it())
    rows = query(
        path, "SELECT user_id, max_running, max_daily, waiting, vtime FROM users ORDER BY 1"
    )
    assert rows == [("alice", 25, None, 2, 0.0), ("bob", None, 50, 0, 0.0)]
    columns = {row[1] for row in query(path, "PRAGMA table_info(users)")}
    assert "max_active" not in columns

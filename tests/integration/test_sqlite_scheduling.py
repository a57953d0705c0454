"""SQLite only: the fair scheduler's state (``waiting`` counts, clocks, type gates) as
the store keeps it, its migration, and the claim's order through the desk.

The shared contract tests hold both stores to the same behaviour; these look inside
the SQLite file, where the store's bookkeeping must agree with its jobs.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobdesk import JobDesk, JobStatus, Limits, Worker
from jobdesk.errors import InvalidTransition, RateLimited
from jobdesk.models import WaitReason
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
    stored = dict(query(path, "SELECT user_id, waiting FROM users WHERE waiting <> 0"))
    counted = dict(
        query(path, "SELECT user_id, count(*) FROM jobs WHERE status = 'pending' GROUP BY user_id")
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

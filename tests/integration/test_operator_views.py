"""What the operator's dashboard reads, on every store: admin tokens, throughput per
minute, the oldest pending job, recent failures, the busiest users, any job by id.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from jobdesk import JobDesk, Worker, tokens
from jobdesk.errors import InvalidInput, JobNotFound, Unauthorized
from jobdesk.store.sqlite import migrations
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk


async def test_admin_tokens_verify_until_revoked_and_only_as_admin_tokens(desk: JobDesk) -> None:
    token = await desk.create_admin_token("ops")
    assert token.startswith("jda_")
    assert await desk.verify_admin_token(token) == "ops"
    with pytest.raises(InvalidInput, match="live admin token named 'ops'"):
        await desk.create_admin_token("ops")
    with pytest.raises(Unauthorized, match="not an admin token"):
        await desk.verify_admin_token(await desk.create_user_token("alice"))
    with pytest.raises(Unauthorized):
        await desk.verify_user_token(token)
    assert await desk.revoke_admin_token("ops") == 1
    with pytest.raises(Unauthorized, match="revoked"):
        await desk.verify_admin_token(token)
    assert await desk.revoke_admin_token("ops") == 0
    assert (await desk.create_admin_token("ops")).startswith("jda_")  # the name is free again


async def test_two_admin_tokens_of_one_name_cannot_be_created_at_once(
    open_desk: OpenDesk,
) -> None:
    # Each desk has its own connection: the database's unique index, not the desk's
    # check before the insert, decides.
    async with open_desk() as first, open_desk() as second:
        outcomes = await asyncio.gather(
            *(desk.create_admin_token("ops") for desk in (first, second, first, second)),
            return_exceptions=True,
        )
        live = [r for r in await first.store.list_tokens("admin") if r.revoked_at is None]
    assert sum(isinstance(outcome, str) for outcome in outcomes) == 1
    refusals = [outcome for outcome in outcomes if isinstance(outcome, InvalidInput)]
    assert len(refusals) == 3
    assert all("a live admin token named 'ops' exists" in str(error) for error in refusals)
    assert len(live) == 1


async def test_throughput_counts_each_minute_of_the_window(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    jobs = [await desk.create_job("alice", "extract", {"n": n}) for n in range(3)]
    clock.advance(minutes=2)
    for job in jobs[:2]:
        await desk.start_job(worker, job.id)
    await desk.complete_job(worker, jobs[0].id, attempt=1)
    await desk.fail_job(worker, jobs[1].id, "no", retryable=False, attempt=1)

    minutes = await desk.get_throughput(timedelta(hours=1))
    assert len(minutes) == 60
    assert [m.minute for m in minutes] == sorted(m.minute for m in minutes)
    assert minutes[-1].minute == clock().replace(second=0, microsecond=0)
    assert sum(m.created for m in minutes) == 3
    assert (minutes[-1].completed, minutes[-1].failed) == (1, 1)
    assert minutes[-3].created == 3

    clock.advance(hours=2)
    later = await desk.get_throughput(timedelta(hours=1))
    assert sum(m.created + m.completed + m.failed for m in later) == 0
    with pytest.raises(InvalidInput, match="window"):
        await desk.get_throughput(timedelta(days=2))


async def test_the_oldest_pending_job_and_recent_failures(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    assert await desk.get_oldest_pending() is None
    first = await desk.create_job("alice", "extract", {})
    clock.advance(minutes=5)
    failing = await desk.create_job("bob", "extract", {})
    await desk.create_job("bob", "extract", {})
    assert await desk.get_oldest_pending() == first.created_at

    await desk.start_job(worker, failing.id)
    await desk.fail_job(worker, failing.id, {"message": "disk full"}, retryable=False, attempt=1)
    [failed] = await desk.get_failed_jobs()
    assert failed.id == failing.id
    assert failed.error == {"message": "disk full"}
    clock.advance(days=2)
    assert await desk.get_failed_jobs(window=timedelta(days=1)) == []


async def test_the_busiest_users_by_active_jobs_and_jobs_created_today(
    desk: JobDesk, worker: Worker
) -> None:
    for _ in range(3):
        await desk.create_job("alice", "extract", {})
    for _ in range(4):
        job = await desk.create_job("bob", "extract", {})
        await desk.cancel_job(job.id, "bob")
    started = await desk.create_job("carol", "extract", {})
    await desk.start_job(worker, started.id)

    loads = await desk.get_top_users(limit=10)
    assert [(load.user_id, load.active, load.created_today) for load in loads] == [
        ("alice", 3, 3),
        ("carol", 1, 1),
        ("bob", 0, 4),
    ]
    # The busiest by active jobs, and the busiest by jobs created today.
    assert [load.user_id for load in await desk.get_top_users(limit=1)] == ["alice", "bob"]


async def test_an_operator_finds_any_users_job_by_id(desk: JobDesk) -> None:
    job = await desk.create_job("alice", "extract", {})
    assert (await desk.find_job(job.id)).user_id == "alice"
    with pytest.raises(JobNotFound):
        await desk.find_job("0" * 26)
    with pytest.raises(InvalidInput, match="job_id"):
        await desk.find_job("../etc")


async def test_the_sqlite_token_table_rebuild_keeps_existing_tokens(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    worker_token, parsed = tokens.generate("worker")
    connection = sqlite3.connect(path, isolation_level=None)
    for number, script in migrations():
        if number <= 2:
            connection.executescript(script)
    connection.execute("PRAGMA user_version = 2")
    connection.execute(
        "INSERT INTO tokens (key_id, kind, subject, secret_hash, created_at) "
        "VALUES (?, 'worker', 'before', ?, '2026-01-01T00:00:00.000000+00:00')",
        (parsed.key_id, parsed.secret_hash),
    )
    connection.close()
    async with JobDesk.open(f"sqlite:///{path}") as migrated:
        assert (await migrated.verify_worker_token(worker_token)).name == "before"
        with pytest.raises(InvalidInput, match="live worker token"):
            await migrated.create_worker_token("before")  # its unique index came back
        assert (await migrated.create_admin_token("ops")).startswith("jda_")

"""PostgreSQL's fair scheduler: the state it keeps in ``jobdesk.users`` and its locks.

The shared suite holds both stores to the rule; these check what only PostgreSQL
has: ``users.waiting`` (kept by every writer, never counted from the jobs) against
the jobs themselves after every kind of move, the arrival rule, the claim's plan
order against ``ready_jobs``, and the limits a start by id meets under concurrency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from jobdesk import Completion, JobDesk, JobSpec, JobStatus, Limits, Worker
from jobdesk.errors import InvalidTransition, RateLimited
from jobdesk.models import WaitReason
from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.testing import ManualClock
from tests.integration.support import run_in_threads


@pytest.fixture
async def pg_desk(postgres_url: str, clock: ManualClock) -> AsyncIterator[JobDesk]:
    """A desk on an empty PostgreSQL database (type limits too) on the manual clock."""
    with psycopg.connect(postgres_url.split("?", maxsplit=1)[0], autocommit=True) as connection:
        connection.execute("TRUNCATE jobdesk.type_limits")
    async with JobDesk.open(postgres_url, clock=clock) as opened:
        yield opened


@pytest.fixture
async def pg_worker(pg_desk: JobDesk) -> Worker:
    """A worker allowed every job type."""
    return await pg_desk.verify_worker_token(await pg_desk.create_worker_token("worker-1"))


def stored_users(postgres_url: str) -> dict[str, tuple[int, int, float]]:
    """Each user's stored waiting count, their pending jobs counted, and their clock."""
    with psycopg.connect(postgres_url.split("?", maxsplit=1)[0]) as connection:
        rows = connection.execute(
            "SELECT u.user_id, u.waiting, "
            "(SELECT count(*) FROM jobdesk.jobs AS j "
            " WHERE j.user_id = u.user_id AND j.status = 'pending'), u.vtime "
            "FROM jobdesk.users AS u ORDER BY u.user_id"
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def assert_waiting_is_counted(postgres_url: str) -> None:
    for user_id, (waiting, pending, _) in stored_users(postgres_url).items():
        assert waiting == pending, f"{user_id}: waiting {waiting}, pending jobs {pending}"


async def test_postgres_waiting_count_follows_every_move_into_and_out_of_pending(
    pg_desk: JobDesk, pg_worker: Worker, postgres_url: str, clock: ManualClock
) -> None:
    desk, worker = pg_desk, pg_worker
    first = await desk.create_job("alice", "demo", {})
    await desk.create_jobs("alice", [JobSpec("demo", {}), JobSpec("demo", {})])
    assert_waiting_is_counted(postgres_url)
    started = await desk.start_job(worker, first.id)
    assert_waiting_is_counted(postgres_url)
    await desk.fail_job(worker, first.id, "again", retryable=True, attempt=started.attempt)
    assert_waiting_is_counted(postgres_url)
    claimed = await desk.claim_jobs(worker, limit=2)
    assert_waiting_is_counted(postgres_url)
    await desk.release_job(worker, claimed[0].id, attempt=claimed[0].attempt)
    await desk.snooze_job(worker, claimed[1].id, 60, attempt=claimed[1].attempt)
    assert_waiting_is_counted(postgres_url)
    cancelled = await desk.cancel_job(claimed[0].id, "alice")
    assert_waiting_is_counted(postgres_url)
    await desk.retry_job(cancelled.id, "alice")
    assert_waiting_is_counted(postgres_url)
    clock.advance(120)
    held = await desk.claim_jobs(worker, limit=10)
    assert held
    clock.advance(Limits().lease_seconds + 1)
    assert await desk.requeue_expired() == len(held)
    assert_waiting_is_counted(postgres_url)
    assert stored_users(postgres_url)["alice"][0] == 3


async def test_postgres_a_user_who_arrives_comes_level_with_those_waiting(
    pg_desk: JobDesk, pg_worker: Worker, postgres_url: str
) -> None:
    for _ in range(4):
        await pg_desk.create_job("alice", "demo", {})
    await pg_desk.claim_jobs(pg_worker, limit=3)
    alice_clock = stored_users(postgres_url)["alice"][2]
    assert alice_clock == 3.0
    await pg_desk.create_job("bob", "demo", {})
    assert stored_users(postgres_url)["bob"][2] == alice_clock
    # Bob, level with Alice, comes first by name; then they alternate.
    order = [job.user_id for job in await pg_desk.claim_jobs(pg_worker, limit=2)]
    assert order == ["alice", "bob"]


async def test_postgres_claim_takes_users_in_turn_as_ready_jobs_says(
    pg_desk: JobDesk, pg_worker: Worker
) -> None:
    for user_id in ("heavy", "light"):
        for index in range(5):
            await pg_desk.create_job(user_id, "demo", {"index": index}, priority=index % 2)
    peek = await pg_desk.get_pending_jobs(pg_worker, limit=6)
    claimed = await pg_desk.claim_jobs(pg_worker, limit=6)
    assert [job.id for job in claimed] == [job.id for job in peek]
    assert [job.user_id for job in claimed] == ["heavy", "light"] * 3
    # Within a user: priority first, then age.
    assert [job.input["index"] for job in claimed if job.user_id == "heavy"] == [1, 3, 0]


async def test_postgres_weights_share_the_starts(pg_desk: JobDesk, pg_worker: Worker) -> None:
    await pg_desk.set_user_limits("gold", weight=3, max_running=100)
    await pg_desk.set_user_limits("plain", max_running=100)
    for user_id in ("gold", "plain"):
        await pg_desk.create_jobs(user_id, [JobSpec("demo", {})] * 40)
    claimed = await pg_desk.claim_jobs(pg_worker, limit=40)
    starts = [job.user_id for job in claimed]
    assert starts.count("gold") == 30
    assert starts.count("plain") == 10


async def test_postgres_a_user_at_their_cap_waits_and_their_backlog_is_passed_over(
    pg_desk: JobDesk, pg_worker: Worker
) -> None:
    await pg_desk.set_user_limits("heavy", max_running=2)
    await pg_desk.create_jobs("heavy", [JobSpec("demo", {})] * 20)
    await pg_desk.create_job("light", "demo", {})
    claimed = await pg_desk.claim_jobs(pg_worker, limit=10)
    assert sorted(job.user_id for job in claimed) == ["heavy", "heavy", "light"]
    assert await pg_desk.claim_jobs(pg_worker, limit=10) == []
    waiting = await pg_desk.get_job_status(
        (await pg_desk.create_job("heavy", "demo", {})).id, "heavy"
    )
    assert waiting.waiting is not None
    assert waiting.waiting.reason is WaitReason.USER_RUNNING_LIMIT


async def test_postgres_complete_and_claim_uses_the_slot_the_completion_frees(
    pg_desk: JobDesk, pg_worker: Worker
) -> None:
    await pg_desk.set_user_limits("alice", max_running=1)
    await pg_desk.create_jobs("alice", [JobSpec("demo", {})] * 2)
    [running] = await pg_desk.claim_jobs(pg_worker, limit=1)
    outcomes, started = await pg_desk.complete_and_claim_jobs(
        pg_worker, [Completion(running.id, running.attempt, {"ok": True})], limit=1
    )
    assert [outcome.status for outcome in outcomes] == [JobStatus.COMPLETED]  # type: ignore[union-attr]
    assert len(started) == 1


async def test_postgres_start_by_id_meets_the_running_cap_and_the_type_gate(
    pg_desk: JobDesk, pg_worker: Worker, clock: ManualClock
) -> None:
    await pg_desk.set_user_limits("alice", max_running=1)
    first, second = await pg_desk.create_jobs("alice", [JobSpec("demo", {})] * 2)
    await pg_desk.start_job(pg_worker, first.id)
    with pytest.raises(InvalidTransition, match="max_running 1"):
        await pg_desk.start_job(pg_worker, second.id)
    await pg_desk.set_type_limits("gpu", max_running=1)
    one, two = await pg_desk.create_jobs("bob", [JobSpec("gpu", {})] * 2)
    await pg_desk.start_job(pg_worker, one.id)
    with pytest.raises(InvalidTransition, match="pool is full"):
        await pg_desk.start_job(pg_worker, two.id)
    await pg_desk.set_type_limits("api", rate="1/min")
    three, four = await pg_desk.create_jobs("carol", [JobSpec("api", {})] * 2)
    await pg_desk.start_job(pg_worker, three.id)
    with pytest.raises(InvalidTransition, match="rate allows the next start"):
        await pg_desk.start_job(pg_worker, four.id)
    assert await pg_desk.claim_jobs(pg_worker, types=["api"]) == []
    clock.advance(60)
    assert [job.id for job in await pg_desk.claim_jobs(pg_worker, types=["api"])] == [four.id]


async def test_postgres_a_retry_is_admitted_by_the_waiting_and_daily_limits(
    pg_desk: JobDesk, pg_worker: Worker, postgres_url: str
) -> None:
    await pg_desk.set_user_limits("alice", max_waiting=1, max_daily=3)
    first = await pg_desk.create_job("alice", "demo", {})
    await pg_desk.cancel_job(first.id, "alice")
    await pg_desk.create_job("alice", "demo", {})
    with pytest.raises(RateLimited) as refused:
        await pg_desk.retry_job(first.id, "alice")
    assert refused.value.limit == "waiting"
    await pg_desk.claim_jobs(pg_worker, limit=1)
    await pg_desk.retry_job(first.id, "alice")
    assert (await pg_desk.get_user_usage("alice")).created_today == 3
    await pg_desk.claim_jobs(pg_worker, limit=1)
    await pg_desk.cancel_job(first.id, "alice")
    with pytest.raises(RateLimited) as refused:
        await pg_desk.retry_job(first.id, "alice")
    assert refused.value.limit == "daily"
    assert_waiting_is_counted(postgres_url)


def test_postgres_concurrent_starts_by_id_respect_the_running_cap(
    postgres_url: str, clock: ManualClock
) -> None:
    with SyncJobDesk.open(postgres_url, clock=clock) as desk:
        desk.set_user_limits("alice", max_running=3)
        jobs = desk.create_jobs("alice", [JobSpec("demo", {})] * 12)
        token = desk.create_worker_token("starter")

    def start(other: SyncJobDesk, index: int) -> object:
        worker = other.verify_worker_token(token)
        return other.start_job(worker, jobs[index].id)

    outcomes = run_in_threads(postgres_url, clock, len(jobs), start)
    refused = [outcome for outcome in outcomes if isinstance(outcome, InvalidTransition)]
    assert len(jobs) - len(refused) == 3
    assert_waiting_is_counted(postgres_url)


def test_postgres_concurrent_claims_respect_the_running_cap(
    postgres_url: str, clock: ManualClock
) -> None:
    with SyncJobDesk.open(postgres_url, clock=clock) as desk:
        desk.set_user_limits("alice", max_running=5)
        desk.create_jobs("alice", [JobSpec("demo", {})] * 30)
        desk.create_jobs("bob", [JobSpec("demo", {})] * 30)
        token = desk.create_worker_token("claimer")

    def claim(other: SyncJobDesk, index: int) -> list[str]:
        worker = other.verify_worker_token(token)
        return [job.user_id for job in other.claim_jobs(worker, limit=4)]

    outcomes = run_in_threads(postgres_url, clock, 8, claim)
    starts = [user_id for outcome in outcomes if isinstance(outcome, list) for user_id in outcome]
    assert starts.count("alice") <= 5
    assert starts.count("bob") <= 10
    with SyncJobDesk.open(postgres_url, clock=clock) as desk:
        worker = desk.verify_worker_token(token)
        starts += [job.user_id for job in desk.claim_jobs(worker, limit=100)]
    assert (starts.count("alice"), starts.count("bob")) == (5, 10)
    assert_waiting_is_counted(postgres_url)

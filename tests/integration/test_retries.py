"""Retries and the queue: backoff, attempt budgets, run_at, and the claim order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobdesk import Job, JobDesk, JobStatus, Limits, Worker
from jobdesk.errors import InvalidTransition
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk

BACKOFF = Limits().retry_backoff_seconds


async def fail_once(desk: JobDesk, worker: Worker, job: Job, message: str = "flaky") -> Job:
    started = await desk.start_job(worker, job.id)
    return await desk.fail_job(worker, job.id, message, attempt=started.attempt)


async def test_a_retryable_failure_waits_a_backoff_in_pending(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {})
    failed = await fail_once(desk, worker, job, "timeout talking to the GPU box")
    assert failed.status is JobStatus.PENDING
    assert failed.error == {"message": "timeout talking to the GPU box"}
    assert (failed.worker_id, failed.lease_expires_at) == (None, None)
    delay = (failed.run_at - clock()).total_seconds()
    assert BACKOFF / 2 <= delay <= BACKOFF  # "equal jitter" around the first delay
    assert await desk.get_job_status(job.id, "alice") == failed
    assert (await desk.get_user_usage("alice")).active == 1


async def test_the_backoff_grows_with_every_attempt(
    open_desk: OpenDesk, clock: ManualClock
) -> None:
    limits = Limits(retry_backoff_seconds=10, retry_backoff_max_seconds=30, max_attempts=5)
    async with open_desk(limits) as desk:
        worker = await desk.verify_worker_token(await desk.create_worker_token("w"))
        job = await desk.create_job("alice", "demo", {})
        delays = []
        for _ in range(4):
            failed = await fail_once(desk, worker, job)
            delays.append((failed.run_at - clock()).total_seconds())
            clock.set(failed.run_at)
    for delay, nominal in zip(delays, [10, 20, 30, 30], strict=True):
        assert nominal / 2 <= delay <= nominal


async def test_a_job_in_backoff_is_not_claimable_until_run_at(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {})
    failed = await fail_once(desk, worker, job)
    clock.set(failed.run_at - timedelta(milliseconds=1))
    assert await desk.get_pending_jobs(worker) == []
    assert await desk.claim_jobs(worker) == []
    with pytest.raises(InvalidTransition):
        await desk.start_job(worker, job.id)
    clock.set(failed.run_at)
    assert [pending.id for pending in await desk.get_pending_jobs(worker)] == [job.id]
    [claimed] = await desk.claim_jobs(worker)
    assert (claimed.id, claimed.attempt) == (job.id, 2)


async def test_a_job_scheduled_for_later_waits_for_its_run_at(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    later = await desk.create_job("alice", "demo", {"n": 1}, run_at=clock() + timedelta(hours=1))
    now = await desk.create_job("alice", "demo", {"n": 2}, run_at=clock() - timedelta(hours=1))
    assert [job.id for job in await desk.get_pending_jobs(worker)] == [now.id]
    assert [job.id for job in await desk.claim_jobs(worker, limit=5)] == [now.id]
    clock.advance(hours=1)
    assert [job.id for job in await desk.claim_jobs(worker, limit=5)] == [later.id]


async def test_a_non_retryable_failure_fails_at_once_and_keeps_the_error(
    desk: JobDesk, worker: Worker
) -> None:
    job = await desk.create_job("alice", "demo", {}, max_attempts=5)
    [claimed] = await desk.claim_jobs(worker)
    error = {"message": "episode not found", "code": "E404", "details": {"id": "ep-9"}}
    failed = await desk.fail_job(worker, job.id, error, retryable=False, attempt=claimed.attempt)
    assert failed.status is JobStatus.FAILED
    stored = await desk.get_job_status(job.id, "alice")
    assert (stored.status, stored.error, stored.attempt) == (JobStatus.FAILED, error, 1)
    assert await desk.claim_jobs(worker) == []


async def test_the_failure_of_the_last_attempt_is_final(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {}, max_attempts=2)
    first = await fail_once(desk, worker, job, "first")
    assert first.status is JobStatus.PENDING
    clock.set(first.run_at)
    second = await fail_once(desk, worker, job, "second")
    assert second.status is JobStatus.FAILED
    assert second.error == {"message": "second"}
    assert (await desk.get_job_status(job.id, "alice")).error == {"message": "second"}
    assert (await desk.get_user_usage("alice")).active == 0


async def test_retry_job_restarts_the_attempt_budget_and_keeps_the_history(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {}, max_attempts=2)
    first = await fail_once(desk, worker, job, "one")
    clock.set(first.run_at)
    spent = await fail_once(desk, worker, job, "two")
    assert spent.status is JobStatus.FAILED

    retried = await desk.retry_job(job.id, "alice")
    assert retried.status is JobStatus.PENDING
    assert retried.run_at <= clock()
    third = await fail_once(desk, worker, job, "three")
    assert third.status is JobStatus.PENDING  # a fresh budget of two attempts
    assert third.attempt == 3
    clock.set(third.run_at)
    final = await fail_once(desk, worker, job, "four")
    assert final.status is JobStatus.FAILED
    assert final.attempt == 4

    history = await desk.get_job_history(job.id, "alice")
    assert [(event.status, event.attempt) for event in history] == [
        (JobStatus.PENDING, 0),
        (JobStatus.PROCESSING, 1),
        (JobStatus.PENDING, 1),
        (JobStatus.PROCESSING, 2),
        (JobStatus.FAILED, 2),
        (JobStatus.PENDING, 2),
        (JobStatus.PROCESSING, 3),
        (JobStatus.PENDING, 3),
        (JobStatus.PROCESSING, 4),
        (JobStatus.FAILED, 4),
    ]
    failures = {index: history[index].error for index in (2, 4, 7, 9)}
    assert failures == {
        2: {"message": "one"},
        4: {"message": "two"},
        7: {"message": "three"},
        9: {"message": "four"},
    }
    assert [event.at for event in history] == sorted(event.at for event in history)


async def test_claims_take_turns_across_users_and_go_by_priority_then_age_within_one(
    desk: JobDesk, worker: Worker
) -> None:
    priorities = [0, 5, -3, 5, 0, 10, -3, 5]
    jobs = [
        await desk.create_job("alice" if n < 5 else "bob", "demo", {"n": n}, priority=priority)
        for n, priority in enumerate(priorities)
    ]

    def own_order(user_id: str) -> list[str]:
        mine = [job for job in jobs if job.user_id == user_id]
        return [job.id for job in sorted(mine, key=lambda job: (-job.priority, job.id))]

    # Equal shares: alice and bob alternate (alice first on the tie) until bob runs out;
    # bob's priority 10 does not put him ahead of alice.
    alice, bob = own_order("alice"), own_order("bob")
    expected = [alice[0], bob[0], alice[1], bob[1], alice[2], bob[2], alice[3], alice[4]]
    assert [job.id for job in await desk.get_pending_jobs(worker, limit=100)] == expected
    assert [job.id for job in await desk.get_pending_jobs(worker, limit=3)] == expected[:3]
    claimed = [job.id for _ in jobs for job in await desk.claim_jobs(worker, limit=1)]
    assert claimed == expected
    assert await desk.claim_jobs(worker) == []


async def test_get_pending_jobs_shows_the_order_of_batched_claims(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    await desk.set_user_limits("alice", max_running=100)
    for n in range(12):
        await desk.create_job("alice", "demo", {"n": n}, priority=n % 3)
        clock.advance(seconds=1)
    shown = [job.id for job in await desk.get_pending_jobs(worker, limit=100)]
    claimed: list[str] = []
    while batch := await desk.claim_jobs(worker, limit=5):
        claimed.extend(job.id for job in batch)
    assert claimed == shown
    assert len(shown) == 12


async def test_a_requeued_job_keeps_its_place_by_priority_and_age(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    old = await desk.create_job("alice", "demo", {"n": "old"})
    young = await desk.create_job("alice", "demo", {"n": "young"})
    failed = await fail_once(desk, worker, old)
    clock.set(failed.run_at)
    assert [job.id for job in await desk.get_pending_jobs(worker)] == [old.id, young.id]
    urgent = await desk.create_job("alice", "demo", {"n": "urgent"}, priority=1)
    assert [job.id for job in await desk.get_pending_jobs(worker)] == [urgent.id, old.id, young.id]


async def test_get_pending_jobs_does_not_start_anything(desk: JobDesk, worker: Worker) -> None:
    job = await desk.create_job("alice", "demo", {})
    for _ in range(3):
        [seen] = await desk.get_pending_jobs(worker)
        assert seen == job
    assert (await desk.get_job_status(job.id, "alice")).status is JobStatus.PENDING


async def test_a_types_filter_claims_only_those_types_in_claim_order(
    desk: JobDesk, worker: Worker
) -> None:
    render = await desk.create_job("alice", "render", {}, priority=5)
    extract_old = await desk.create_job("alice", "extract", {"n": 1})
    extract_urgent = await desk.create_job("alice", "extract", {"n": 2}, priority=1)
    other = await desk.create_job("alice", "transcode", {})
    pending = await desk.get_pending_jobs(worker, types=["extract", "missing"])
    assert [job.id for job in pending] == [extract_urgent.id, extract_old.id]
    claimed = await desk.claim_jobs(worker, types="extract", limit=10)
    assert [job.id for job in claimed] == [extract_urgent.id, extract_old.id]
    remaining = await desk.claim_jobs(worker, limit=10)
    assert [job.id for job in remaining] == [render.id, other.id]

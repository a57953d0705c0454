"""Fencing: a worker writes only under the lease and attempt it holds.

Attempts increase on every start and never repeat; a stale attempt, another
worker's job and an expired lease are all refused with ``LeaseLost``, so a slow
worker can never overwrite the attempt that replaced it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest

from jobdesk import Job, JobDesk, JobStatus, Limits, Worker
from jobdesk.errors import JobNotFound, LeaseLost
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk
from tests.integration.support import MISSING_ID

LEASE = Limits().lease_seconds
BACKOFF = Limits().retry_backoff_seconds
WorkerCall = Callable[[Worker, int], Awaitable[object]]


def worker_calls(desk: JobDesk, job_id: str) -> dict[str, WorkerCall]:
    """Every worker write on ``job_id``, as ``call(worker, attempt)``."""
    return {
        "progress": lambda w, a: desk.update_job_progress(w, job_id, 50, "late", attempt=a),
        "heartbeat": lambda w, a: desk.heartbeat_job(w, job_id, attempt=a),
        "complete": lambda w, a: desk.complete_job(w, job_id, {"by": w.name}, attempt=a),
        "fail": lambda w, a: desk.fail_job(w, job_id, "late failure", attempt=a),
    }


async def due_again(desk: JobDesk, clock: ManualClock, job_id: str, user_id: str) -> Job:
    """Move the clock to the end of a requeued job's backoff; the job, pending and due."""
    job = await desk.get_job_status(job_id, user_id)
    assert job.status is JobStatus.PENDING
    assert job.run_at > clock()  # an expired lease is retried after a backoff, like a failure
    clock.set(job.run_at)
    return job


@pytest.fixture
async def other_worker(desk: JobDesk) -> Worker:
    """A second worker allowed every job type."""
    return await desk.verify_worker_token(await desk.create_worker_token("worker-2"))


async def test_attempts_increase_on_every_start_and_never_repeat(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {}, max_attempts=3)
    attempts = []
    [claimed] = await desk.claim_jobs(worker)  # 1: fails, retryable
    attempts.append(claimed.attempt)
    failed = await desk.fail_job(worker, job.id, "flaky", attempt=claimed.attempt)
    clock.set(failed.run_at)
    started = await desk.start_job(worker, job.id)  # 2: its lease runs out
    attempts.append(started.attempt)
    clock.advance(seconds=LEASE)
    assert await desk.requeue_expired() == 1
    await due_again(desk, clock, job.id, "alice")
    [claimed] = await desk.claim_jobs(worker)  # 3: the last of the budget
    attempts.append(claimed.attempt)
    final = await desk.fail_job(worker, job.id, "again", attempt=claimed.attempt)
    assert final.status is JobStatus.FAILED
    await desk.retry_job(job.id, "alice")
    [claimed] = await desk.claim_jobs(worker)  # 4: after the user's retry
    attempts.append(claimed.attempt)
    assert attempts == [1, 2, 3, 4]
    history = await desk.get_job_history(job.id, "alice")
    started_attempts = [event.attempt for event in history if event.status is JobStatus.PROCESSING]
    assert started_attempts == [1, 2, 3, 4]
    assert [event.attempt for event in history] == sorted(event.attempt for event in history)


OPERATIONS = ("progress", "heartbeat", "complete", "fail")


async def test_a_stale_attempt_is_refused(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    for operation in OPERATIONS:
        job = await desk.create_job("alice", "demo", {"for": operation})
        first = await desk.start_job(worker, job.id)
        failed = await desk.fail_job(worker, job.id, "flaky", attempt=first.attempt)
        clock.set(failed.run_at)
        second = await desk.start_job(worker, job.id)
        assert second.attempt == first.attempt + 1
        before = await desk.get_job_status(job.id, "alice")
        call = worker_calls(desk, job.id)[operation]
        for stale in (first.attempt, second.attempt + 1, 99):
            with pytest.raises(LeaseLost) as caught:
                await call(worker, stale)
            assert caught.value.job_id == job.id
        assert await desk.get_job_status(job.id, "alice") == before, operation
        await call(worker, second.attempt)  # the current attempt is still honoured


async def test_another_workers_job_is_refused(
    desk: JobDesk, worker: Worker, other_worker: Worker
) -> None:
    for operation in OPERATIONS:
        job = await desk.create_job("alice", "demo", {"for": operation})
        claimed = await desk.start_job(worker, job.id)
        with pytest.raises(LeaseLost):
            await worker_calls(desk, job.id)[operation](other_worker, claimed.attempt)
        assert await desk.get_job_status(job.id, "alice") == claimed, operation
        done = await desk.complete_job(worker, job.id, "mine", attempt=claimed.attempt)
        assert done.result == "mine"


async def test_an_expired_lease_is_refused_before_any_reaper_runs(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    for operation in OPERATIONS:
        job = await desk.create_job("alice", "demo", {"for": operation})
        claimed = await desk.start_job(worker, job.id)
        clock.advance(seconds=LEASE)
        with pytest.raises(LeaseLost):
            await worker_calls(desk, job.id)[operation](worker, claimed.attempt)
        assert await desk.get_job_status(job.id, "alice") == claimed, operation


async def test_worker_operations_on_an_unknown_job_raise_job_not_found(
    desk: JobDesk, worker: Worker
) -> None:
    for operation, call in worker_calls(desk, MISSING_ID).items():
        with pytest.raises(JobNotFound) as caught:
            await call(worker, 1)
        assert caught.value.job_id == MISSING_ID, operation
    with pytest.raises(JobNotFound):
        await desk.start_job(worker, MISSING_ID)


async def test_progress_and_heartbeats_renew_the_lease(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {})
    [claimed] = await desk.claim_jobs(worker)
    assert claimed.lease_expires_at == clock() + timedelta(seconds=LEASE)
    for renew in range(4):
        clock.advance(seconds=LEASE - 1)  # just before the lease runs out
        if renew % 2:
            reply = await desk.heartbeat_job(worker, job.id, attempt=claimed.attempt)
        else:
            reply = await desk.update_job_progress(worker, job.id, renew, attempt=claimed.attempt)
        assert reply.cancel_requested is False
        assert reply.lease_expires_at == clock() + timedelta(seconds=LEASE)
        assert await desk.requeue_expired() == 0
    stored = await desk.get_job_status(job.id, "alice")
    assert stored.lease_expires_at == clock() + timedelta(seconds=LEASE)
    clock.advance(seconds=LEASE - 1)
    done = await desk.complete_job(worker, job.id, "in time", attempt=claimed.attempt)
    assert done.status is JobStatus.COMPLETED


async def test_a_lease_runs_out_lease_seconds_after_the_last_renewal(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {})
    [claimed] = await desk.claim_jobs(worker)
    clock.advance(seconds=LEASE - 1)
    await desk.heartbeat_job(worker, job.id, attempt=claimed.attempt)
    clock.advance(seconds=LEASE + 1)  # just after
    with pytest.raises(LeaseLost):
        await desk.heartbeat_job(worker, job.id, attempt=claimed.attempt)
    assert await desk.requeue_expired() == 1


async def test_the_lease_length_comes_from_the_limits(
    open_desk: OpenDesk, clock: ManualClock
) -> None:
    async with open_desk(Limits(lease_seconds=10)) as desk:
        worker = await desk.verify_worker_token(await desk.create_worker_token("short"))
        job = await desk.create_job("alice", "demo", {})
        [claimed] = await desk.claim_jobs(worker)
        assert claimed.lease_expires_at == clock() + timedelta(seconds=10)
        clock.advance(seconds=9)
        await desk.heartbeat_job(worker, job.id, attempt=claimed.attempt)
        clock.advance(seconds=11)
        with pytest.raises(LeaseLost):
            await desk.heartbeat_job(worker, job.id, attempt=claimed.attempt)


async def test_requeue_expired_returns_expired_leases_to_the_queue(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    jobs = [await desk.create_job("alice", "demo", {"n": n}) for n in range(4)]
    claimed = await desk.claim_jobs(worker, limit=3)
    assert await desk.requeue_expired() == 0
    clock.advance(seconds=LEASE - 1)
    await desk.heartbeat_job(worker, claimed[0].id, attempt=claimed[0].attempt)
    clock.advance(seconds=1)
    assert await desk.requeue_expired() == 2
    assert await desk.requeue_expired() == 0
    statuses = {job.id: (await desk.get_job_status(job.id, "alice")) for job in jobs}
    assert statuses[claimed[0].id].status is JobStatus.PROCESSING
    for job in claimed[1:]:
        requeued = statuses[job.id]
        assert requeued.status is JobStatus.PENDING
        assert (requeued.worker_id, requeued.lease_expires_at) == (None, None)
        delay = (requeued.run_at - clock()).total_seconds()
        assert BACKOFF / 2 <= delay <= BACKOFF  # the first retry's backoff
        assert requeued.error is not None
        assert requeued.error["code"] == "lease_expired"
    assert statuses[jobs[3].id].status is JobStatus.PENDING
    assert [job.id for job in await desk.claim_jobs(worker, limit=10)] == [jobs[3].id]
    clock.set(max(statuses[job.id].run_at for job in claimed[1:]))
    reclaimed = await desk.claim_jobs(worker, limit=10)
    assert {job.id for job in reclaimed} == {claimed[1].id, claimed[2].id}
    assert {job.attempt for job in reclaimed} == {2}


async def test_requeue_expired_fails_a_job_whose_attempts_are_spent(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {}, max_attempts=1)
    await desk.claim_jobs(worker)
    clock.advance(seconds=LEASE + 1)
    assert await desk.requeue_expired() == 1
    failed = await desk.get_job_status(job.id, "alice")
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error["code"] == "lease_expired"
    assert (await desk.get_user_usage("alice")).active == 0
    assert await desk.claim_jobs(worker) == []


async def test_requeue_expired_leaves_cancelled_and_finished_jobs_alone(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    cancelled = await desk.create_job("alice", "demo", {"n": 1})
    completed = await desk.create_job("alice", "demo", {"n": 2})
    claims = {job.id: job for job in await desk.claim_jobs(worker, limit=2)}
    await desk.cancel_job(cancelled.id, "alice")
    await desk.complete_job(worker, completed.id, "done", attempt=claims[completed.id].attempt)
    clock.advance(days=1)
    assert await desk.requeue_expired() == 0
    assert (await desk.get_job_status(cancelled.id, "alice")).status is JobStatus.CANCELLED
    assert (await desk.get_job_status(completed.id, "alice")).status is JobStatus.COMPLETED


async def test_a_late_worker_cannot_overwrite_the_attempt_that_replaced_it(
    desk: JobDesk, worker: Worker, other_worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {})
    [slow] = await desk.claim_jobs(worker)
    clock.advance(seconds=LEASE + 1)
    assert await desk.requeue_expired() == 1
    await due_again(desk, clock, job.id, "alice")
    [fast] = await desk.claim_jobs(other_worker)
    assert fast.attempt == slow.attempt + 1
    for operation, call in worker_calls(desk, job.id).items():
        with pytest.raises(LeaseLost):
            await call(worker, slow.attempt)
        assert (await desk.get_job_status(job.id, "alice")).worker_id == other_worker.name, (
            operation
        )
    done = await desk.complete_job(other_worker, job.id, {"by": "B"}, attempt=fast.attempt)
    assert done.result == {"by": "B"}
    with pytest.raises(LeaseLost):
        await desk.complete_job(worker, job.id, {"by": "A"}, attempt=slow.attempt)
    with pytest.raises(LeaseLost):
        await desk.complete_job(worker, job.id, {"by": "A"}, attempt=fast.attempt)
    stored = await desk.get_job_status(job.id, "alice")
    assert (stored.status, stored.result, stored.worker_id) == (
        JobStatus.COMPLETED,
        {"by": "B"},
        other_worker.name,
    )


async def test_the_same_worker_reclaiming_a_job_gets_a_new_attempt(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("alice", "demo", {})
    [old] = await desk.claim_jobs(worker)
    clock.advance(seconds=LEASE)
    await desk.requeue_expired()
    await due_again(desk, clock, job.id, "alice")
    [new] = await desk.claim_jobs(worker)
    with pytest.raises(LeaseLost):
        await desk.complete_job(worker, job.id, "old", attempt=old.attempt)
    assert (await desk.complete_job(worker, job.id, "new", attempt=new.attempt)).result == "new"


async def test_concurrent_reapers_requeue_each_expired_job_once(
    desk: JobDesk, open_desk: OpenDesk, worker: Worker, clock: ManualClock
) -> None:
    await desk.set_user_limits("alice", max_running=100)
    for n in range(40):
        await desk.create_job("alice", "demo", {"n": n}, max_attempts=2)
    assert len(await desk.claim_jobs(worker, limit=40)) == 40
    clock.advance(seconds=LEASE)
    async with AsyncExitStack() as stack:
        desks = [await stack.enter_async_context(open_desk()) for _ in range(4)]
        counts = await asyncio.gather(*(reaper.requeue_expired() for reaper in desks * 2))
    assert sum(counts) == 40
    page = await desk.get_user_jobs("alice", limit=100)
    assert {job.status for job in page.items} == {JobStatus.PENDING}
    for job in page.items:
        history = await desk.get_job_history(job.id, "alice")
        assert [event.status for event in history] == [
            JobStatus.PENDING,
            JobStatus.PROCESSING,
            JobStatus.PENDING,
        ]

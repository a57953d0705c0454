"""The state machine: only the transitions of DESIGN.md happen; anything else is refused.

```
pending -> processing (start/claim) -> completed | failed | pending (retryable fail)
pending | processing -> cancelled (cancel);  failed | cancelled -> pending (retry)
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from jobdesk import JobDesk, JobStatus, Worker
from jobdesk.errors import InvalidTransition, LeaseLost
from tests.integration.support import job_in_status

Calls = list[Callable[[], Awaitable[object]]]


async def test_a_job_is_created_pending_with_its_fields(desk: JobDesk) -> None:
    job = await desk.create_job(
        "alice", "extract", {"episodes": ["e1"]}, "project-1", priority=5, max_attempts=4
    )
    assert job.status is JobStatus.PENDING
    assert (job.user_id, job.type, job.project_id) == ("alice", "extract", "project-1")
    assert (job.priority, job.max_attempts, job.attempt) == (5, 4, 0)
    assert (job.progress, job.worker_id, job.cancel_requested) == (0.0, None, False)
    assert job.created_at == job.run_at == job.updated_at
    assert await desk.get_job_status(job.id, "alice") == job


async def test_a_job_goes_through_processing_to_completed(desk: JobDesk, worker: Worker) -> None:
    job = await desk.create_job("alice", "extract", {"n": 1})
    started = await desk.start_job(worker, job.id)
    assert started.status is JobStatus.PROCESSING
    assert (started.attempt, started.worker_id) == (1, worker.name)
    assert started.lease_expires_at is not None
    reply = await desk.update_job_progress(worker, job.id, 42.5, "half", attempt=1)
    assert reply.cancel_requested is False
    seen = await desk.get_job_status(job.id, "alice")
    assert (seen.progress, seen.progress_message) == (42.5, "half")
    done = await desk.complete_job(worker, job.id, {"answer": [1, 2]}, attempt=1)
    assert done.status is JobStatus.COMPLETED
    assert done.finished_at is not None
    stored = await desk.get_job_status(job.id, "alice")
    assert (stored.status, stored.result, stored.progress) == (
        JobStatus.COMPLETED,
        {"answer": [1, 2]},
        100.0,
    )
    history = await desk.get_job_history(job.id, "alice")
    assert [(event.status, event.attempt) for event in history] == [
        (JobStatus.PENDING, 0),
        (JobStatus.PROCESSING, 1),
        (JobStatus.COMPLETED, 1),
    ]


@pytest.mark.parametrize(
    "status", [JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]
)
async def test_only_a_pending_job_can_be_started(
    desk: JobDesk, worker: Worker, status: JobStatus
) -> None:
    job = await job_in_status(desk, worker, "alice", status)
    with pytest.raises(InvalidTransition):
        await desk.start_job(worker, job.id)
    assert await desk.get_job_status(job.id, "alice") == job
    assert [claimed.id for claimed in await desk.claim_jobs(worker, limit=10)] == []


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED])
async def test_only_failed_and_cancelled_jobs_can_be_retried(
    desk: JobDesk, worker: Worker, status: JobStatus
) -> None:
    job = await job_in_status(desk, worker, "alice", status)
    with pytest.raises(InvalidTransition):
        await desk.retry_job(job.id, "alice")
    assert await desk.get_job_status(job.id, "alice") == job


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
async def test_a_failed_or_cancelled_job_can_be_retried(
    desk: JobDesk, worker: Worker, status: JobStatus
) -> None:
    job = await job_in_status(desk, worker, "alice", status)
    retried = await desk.retry_job(job.id, "alice")
    assert retried.status is JobStatus.PENDING
    assert (retried.worker_id, retried.finished_at, retried.cancel_requested) == (None, None, False)
    [claimed] = await desk.claim_jobs(worker)
    assert claimed.id == job.id
    assert claimed.attempt == job.attempt + 1


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
async def test_a_completed_or_failed_job_cannot_be_cancelled(
    desk: JobDesk, worker: Worker, status: JobStatus
) -> None:
    job = await job_in_status(desk, worker, "alice", status)
    with pytest.raises(InvalidTransition) as caught:
        await desk.cancel_job(job.id, "alice")
    assert caught.value.job_id == job.id
    assert await desk.get_job_status(job.id, "alice") == job


async def test_a_completed_job_stays_completed(desk: JobDesk, worker: Worker) -> None:
    job = await job_in_status(desk, worker, "alice", JobStatus.COMPLETED)
    refused: Calls = [
        lambda: desk.cancel_job(job.id, "alice"),
        lambda: desk.retry_job(job.id, "alice"),
        lambda: desk.start_job(worker, job.id),
    ]
    for call in refused:
        with pytest.raises(InvalidTransition):
            await call()
    lost: Calls = [
        lambda: desk.complete_job(worker, job.id, {"again": True}, attempt=job.attempt),
        lambda: desk.fail_job(worker, job.id, "late", attempt=job.attempt),
        lambda: desk.update_job_progress(worker, job.id, 10, attempt=job.attempt),
        lambda: desk.heartbeat_job(worker, job.id, attempt=job.attempt),
    ]
    for call in lost:
        with pytest.raises(LeaseLost):
            await call()
    assert await desk.get_job_status(job.id, "alice") == job
    assert (await desk.get_job_status(job.id, "alice")).result == {"ok": True}


async def test_cancelling_a_cancelled_job_is_harmless(desk: JobDesk, worker: Worker) -> None:
    job = await job_in_status(desk, worker, "alice", JobStatus.CANCELLED)
    history = await desk.get_job_history(job.id, "alice")
    again = await desk.cancel_job(job.id, "alice")
    assert again == job
    assert await desk.get_job_status(job.id, "alice") == job
    assert await desk.get_job_history(job.id, "alice") == history


async def test_cancelling_a_pending_job_is_immediate(desk: JobDesk, worker: Worker) -> None:
    job = await desk.create_job("alice", "demo", {})
    cancelled = await desk.cancel_job(job.id, "alice")
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.cancel_requested is False
    assert cancelled.finished_at is not None
    assert await desk.claim_jobs(worker) == []
    assert await desk.get_pending_jobs(worker) == []
    with pytest.raises(InvalidTransition):
        await desk.start_job(worker, job.id)


async def test_cancelling_a_processing_job_stops_its_worker(desk: JobDesk, worker: Worker) -> None:
    job = await desk.create_job("alice", "demo", {})
    [claimed] = await desk.claim_jobs(worker)
    cancelled = await desk.cancel_job(job.id, "alice")
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.cancel_requested is True
    assert (await desk.get_user_usage("alice")).active == 0

    progress = await desk.update_job_progress(worker, job.id, 50, "still going", attempt=1)
    heartbeat = await desk.heartbeat_job(worker, job.id, attempt=claimed.attempt)
    assert progress.cancel_requested is True
    assert heartbeat.cancel_requested is True
    with pytest.raises(LeaseLost):
        await desk.complete_job(worker, job.id, {"late": True}, attempt=claimed.attempt)
    with pytest.raises(LeaseLost):
        await desk.fail_job(worker, job.id, "late", attempt=claimed.attempt)

    stored = await desk.get_job_status(job.id, "alice")
    assert stored.status is JobStatus.CANCELLED
    assert (stored.result, stored.progress_message) == (None, None)
    assert [event.status for event in await desk.get_job_history(job.id, "alice")] == [
        JobStatus.PENDING,
        JobStatus.PROCESSING,
        JobStatus.CANCELLED,
    ]


async def test_a_cancelled_job_retried_does_not_reach_its_old_worker(
    desk: JobDesk, worker: Worker
) -> None:
    job = await desk.create_job("alice", "demo", {})
    [first] = await desk.claim_jobs(worker)
    await desk.cancel_job(job.id, "alice")
    await desk.retry_job(job.id, "alice")
    with pytest.raises(LeaseLost):
        await desk.heartbeat_job(worker, job.id, attempt=first.attempt)
    [second] = await desk.claim_jobs(worker)
    assert second.attempt == first.attempt + 1
    assert second.cancel_requested is False
    reply = await desk.heartbeat_job(worker, job.id, attempt=second.attempt)
    assert reply.cancel_requested is False
    with pytest.raises(LeaseLost):
        await desk.complete_job(worker, job.id, "old", attempt=first.attempt)
    done = await desk.complete_job(worker, job.id, "new", attempt=second.attempt)
    assert done.result == "new"


async def test_a_never_started_job_cannot_be_reported_on(desk: JobDesk, worker: Worker) -> None:
    job = await desk.create_job("alice", "demo", {})
    lost: Calls = [
        lambda: desk.update_job_progress(worker, job.id, 10, attempt=1),
        lambda: desk.heartbeat_job(worker, job.id, attempt=1),
        lambda: desk.complete_job(worker, job.id, None, attempt=1),
        lambda: desk.fail_job(worker, job.id, "nope", attempt=1),
    ]
    for call in lost:
        with pytest.raises(LeaseLost):
            await call()
    assert await desk.get_job_status(job.id, "alice") == job


async def test_a_failed_job_keeps_its_error_and_refuses_worker_writes(
    desk: JobDesk, worker: Worker
) -> None:
    job = await desk.create_job("alice", "demo", {})
    [claimed] = await desk.claim_jobs(worker)
    error = {"message": "bad input", "code": "E_INPUT", "details": {"row": 3}}
    failed = await desk.fail_job(worker, job.id, error, retryable=False, attempt=claimed.attempt)
    assert failed.status is JobStatus.FAILED
    assert failed.error == error
    with pytest.raises(LeaseLost):
        await desk.complete_job(worker, job.id, "late", attempt=claimed.attempt)
    stored = await desk.get_job_status(job.id, "alice")
    assert (stored.status, stored.error, stored.result) == (JobStatus.FAILED, error, None)
    assert stored.finished_at is not None


async def test_an_exception_is_a_valid_failure(desk: JobDesk, worker: Worker) -> None:
    job = await desk.create_job("alice", "demo", {})
    [claimed] = await desk.claim_jobs(worker)
    failed = await desk.fail_job(
        worker, job.id, KeyError("episode"), retryable=False, attempt=claimed.attempt
    )
    assert failed.error is not None
    assert failed.error["code"] == "KeyError"
    assert "episode" in failed.error["message"]

"""complete_jobs (one transaction for a batch) and release_job (hand back unspent)."""

from __future__ import annotations

import pytest

from jobdesk import Completion, JobDesk, JobStatus, Worker
from jobdesk.errors import InvalidInput, JobNotFound, LeaseLost
from jobdesk.testing import ManualClock
from tests.integration.support import MISSING_ID


async def test_a_batch_completes_every_job_it_holds(desk: JobDesk, worker: Worker) -> None:
    for n in range(5):
        await desk.create_job("user-1", "render", {"n": n})
    claimed = await desk.claim_jobs(worker, limit=5)
    outcomes = await desk.complete_jobs(
        worker, [Completion(job.id, job.attempt, {"n": job.input["n"]}) for job in claimed]
    )
    assert [getattr(outcome, "status", None) for outcome in outcomes] == [JobStatus.COMPLETED] * 5
    for job in claimed:
        stored = await desk.get_job_status(job.id, "user-1")
        assert (stored.status, stored.result) == (JobStatus.COMPLETED, {"n": job.input["n"]})
        history = [event.status for event in await desk.get_job_history(job.id, "user-1")]
        assert history == [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED]


async def test_a_refused_entry_is_reported_in_its_place_and_holds_back_nothing(
    desk: JobDesk, worker: Worker
) -> None:
    first = await desk.create_job("user-1", "render", {"n": 1})
    cancelled = await desk.create_job("user-1", "render", {"n": 2})
    [one, two] = await desk.claim_jobs(worker, limit=2)
    await desk.cancel_job(cancelled.id, "user-1")
    outcomes = await desk.complete_jobs(
        worker,
        [
            Completion(one.id, one.attempt, "done"),
            Completion(two.id, two.attempt, "too late"),
            Completion(one.id, one.attempt + 1, "stale"),
            Completion(MISSING_ID, 1),
        ],
    )
    assert getattr(outcomes[0], "status", None) is JobStatus.COMPLETED
    assert isinstance(outcomes[1], LeaseLost)
    assert isinstance(outcomes[2], LeaseLost)  # the same job again: already completed
    assert isinstance(outcomes[3], JobNotFound)
    assert (await desk.get_job_status(first.id, "user-1")).result == "done"
    assert (await desk.get_job_status(cancelled.id, "user-1")).status is JobStatus.CANCELLED


async def test_a_batch_is_validated_before_anything_is_written(
    desk: JobDesk, worker: Worker
) -> None:
    await desk.create_job("user-1", "render", {})
    [job] = await desk.claim_jobs(worker)
    with pytest.raises(InvalidInput) as caught:
        await desk.complete_jobs(
            worker, [Completion(job.id, job.attempt), Completion("not-an-id", 1)]
        )
    assert caught.value.field == "job_id"
    assert (await desk.get_job_status(job.id, "user-1")).status is JobStatus.PROCESSING
    with pytest.raises(InvalidInput) as empty:
        await desk.complete_jobs(worker, [])
    assert empty.value.field == "completions"


async def test_a_released_job_is_pending_at_once_and_keeps_its_budget(
    desk: JobDesk, worker: Worker
) -> None:
    job = await desk.create_job("user-1", "render", {}, max_attempts=1)
    [held] = await desk.claim_jobs(worker)
    released = await desk.release_job(worker, job.id, attempt=held.attempt)
    assert (released.status, released.attempts_left, released.worker_id) == (
        JobStatus.PENDING,
        1,
        None,
    )
    with pytest.raises(LeaseLost):
        await desk.complete_job(worker, job.id, "late", attempt=held.attempt)
    [again] = await desk.claim_jobs(worker)
    assert again.attempt == held.attempt + 1
    failed = await desk.fail_job(worker, job.id, "boom", attempt=again.attempt)
    assert failed.status is JobStatus.FAILED  # its one counted attempt is now spent


async def test_a_new_attempt_starts_without_the_previous_error(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("user-1", "render", {})
    [first] = await desk.claim_jobs(worker)
    failed = await desk.fail_job(worker, job.id, "flaky", attempt=first.attempt)
    assert failed.error == {"message": "flaky"}
    clock.set(failed.run_at)
    [second] = await desk.claim_jobs(worker)
    assert second.error is None
    assert (await desk.get_job_status(job.id, "user-1")).error is None
    history = await desk.get_job_history(job.id, "user-1")
    assert [event.error for event in history][-2] == {"message": "flaky"}

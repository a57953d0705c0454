"""fail_job(retry_after=...): the worker chooses the delay before the next attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobdesk import JobDesk, JobStatus, Worker
from jobdesk.errors import InvalidInput
from jobdesk.testing import ManualClock


async def test_retry_after_replaces_the_backoff(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    job = await desk.create_job("user-1", "render", {})
    [held] = await desk.claim_jobs(worker)
    failed = await desk.fail_job(worker, job.id, "busy", attempt=held.attempt, retry_after=120)
    assert (failed.status, failed.run_at) == (JobStatus.PENDING, clock() + timedelta(seconds=120))

    clock.advance(seconds=120)
    [again] = await desk.claim_jobs(worker)
    now = await desk.fail_job(worker, job.id, "busy", attempt=again.attempt, retry_after=0)
    assert now.run_at == clock()


async def test_retry_after_does_not_revive_a_final_failure(desk: JobDesk, worker: Worker) -> None:
    job = await desk.create_job("user-1", "render", {}, max_attempts=1)
    [held] = await desk.claim_jobs(worker)
    failed = await desk.fail_job(worker, job.id, "busy", attempt=held.attempt, retry_after=5)
    assert failed.status is JobStatus.FAILED


@pytest.mark.parametrize("delay", [-1, 3601, float("nan"), True, "soon"])
async def test_a_bad_retry_after_is_refused(desk: JobDesk, worker: Worker, delay: object) -> None:
    job = await desk.create_job("user-1", "render", {})
    [held] = await desk.claim_jobs(worker)
    with pytest.raises(InvalidInput) as refused:
        await desk.fail_job(worker, job.id, "x", attempt=held.attempt, retry_after=delay)  # type: ignore[arg-type]
    assert refused.value.field == "retry_after"
    assert (await desk.get_job_status(job.id, "user-1")).status is JobStatus.PROCESSING

"""Pruning finished jobs, and the live change feed, on every store."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from jobdesk import JobDesk, JobStatus, Worker
from jobdesk.changes import JobChange, Subscription
from jobdesk.errors import InvalidInput, JobNotFound
from jobdesk.testing import ManualClock


async def test_prune_deletes_only_jobs_finished_before_the_retention_period(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    old_done = await desk.create_job("user-1", "render", {"n": 1})
    old_cancelled = await desk.cancel_job(
        (await desk.create_job("user-1", "render", {"n": 2})).id, "user-1"
    )
    [started] = await desk.claim_jobs(worker)
    await desk.complete_job(worker, started.id, {"ok": True}, attempt=started.attempt)
    still_pending = await desk.create_job("user-1", "render", {"n": 3})
    clock.advance(days=31)
    recent = await desk.cancel_job((await desk.create_job("user-1", "render", {})).id, "user-1")

    assert await desk.prune_finished(timedelta(days=30)) == 2

    for gone in (old_done, old_cancelled):
        with pytest.raises(JobNotFound):
            await desk.get_job_status(gone.id, "user-1")
    kept = {job.id for job in (await desk.get_user_jobs("user-1")).items}
    assert kept == {still_pending.id, recent.id}
    assert await desk.prune_finished(timedelta(days=30)) == 0


async def test_prune_works_through_more_than_one_batch(desk: JobDesk, clock: ManualClock) -> None:
    await desk.set_user_limits("user-1", max_running=5000, max_waiting=5000, max_daily=5000)
    for n in range(1203):
        await desk.cancel_job((await desk.create_job("user-1", "render", {"n": n})).id, "user-1")
    clock.advance(days=2)
    assert await desk.prune_finished(timedelta(days=1)) == 1203
    assert (await desk.get_user_jobs("user-1")).items == []


async def test_prune_refuses_a_negative_period(desk: JobDesk) -> None:
    with pytest.raises(InvalidInput) as caught:
        await desk.prune_finished(timedelta(days=-1))
    assert caught.value.field == "older_than"


async def next_change_of(changes: Subscription, job_id: str) -> JobChange:
    while True:
        change = await asyncio.wait_for(changes.next_change(), 10)
        if isinstance(change, JobChange) and change.job_id == job_id:
            return change


async def test_subscribers_see_each_committed_change(desk: JobDesk, worker: Worker) -> None:
    async with desk.subscribe() as changes:
        job = await desk.create_job("user-1", "render", {})
        assert (await next_change_of(changes, job.id)).status is JobStatus.PENDING
        [claimed] = await desk.claim_jobs(worker)
        assert (await next_change_of(changes, job.id)).status is JobStatus.PROCESSING
        await desk.update_job_progress(worker, job.id, 55.5, "half", attempt=claimed.attempt)
        progressed = await next_change_of(changes, job.id)
        assert (progressed.progress, progressed.progress_message) == (55.5, "half")
        await desk.cancel_job(job.id, "user-1")
        cancelled = await next_change_of(changes, job.id)
        assert (cancelled.status, cancelled.user_id) == (JobStatus.CANCELLED, "user-1")


async def test_a_refused_operation_publishes_nothing(desk: JobDesk) -> None:
    job = await desk.cancel_job((await desk.create_job("user-1", "render", {})).id, "user-1")
    async with desk.subscribe() as changes:
        with pytest.raises(JobNotFound):
            await desk.cancel_job(job.id, "user-2")
        await desk.cancel_job(job.id, "user-1")  # already cancelled: nothing changes
        marker = await desk.create_job("user-1", "render", {"marker": True})
        seen: list[str] = []
        while not seen or seen[-1] != marker.id:
            change = await asyncio.wait_for(changes.next_change(), 10)
            if isinstance(change, JobChange):
                seen.append(change.job_id)
    assert job.id not in seen

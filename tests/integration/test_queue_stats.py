"""get_queue_stats: queue depth by type and status, workers seen, recent throughput."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobdesk import JobDesk, JobStatus, QueueCount
from jobdesk.errors import InvalidInput
from jobdesk.testing import ManualClock


async def test_stats_count_the_queue_the_workers_and_what_finished_recently(
    desk: JobDesk, clock: ManualClock
) -> None:
    first = await desk.verify_worker_token(await desk.create_worker_token("gpu-1"))
    second = await desk.verify_worker_token(await desk.create_worker_token("gpu-2"))
    old = await desk.create_job("user-1", "render", {})
    [held] = await desk.claim_jobs(first)
    await desk.complete_job(first, old.id, "long ago", attempt=held.attempt)
    clock.advance(minutes=10)  # out of the window from here on

    for n in range(3):
        await desk.create_job("user-1", "render", {"n": n})
    await desk.create_job("user-2", "extract", {})
    [one, two] = await desk.claim_jobs(second, types="render", limit=2)
    await desk.complete_job(second, one.id, "done", attempt=one.attempt)
    await desk.fail_job(second, two.id, "broken", retryable=False, attempt=two.attempt)
    [running] = await desk.claim_jobs(first, types="render")
    clock.advance(seconds=30)
    await desk.heartbeat_job(first, running.id, attempt=running.attempt)
    cancelled = await desk.create_job("user-2", "extract", {"n": 2})
    await desk.cancel_job(cancelled.id, "user-2")

    stats = await desk.get_queue_stats()

    assert stats.at == clock()
    assert stats.window_seconds == 300
    assert stats.counts == [
        QueueCount("extract", JobStatus.CANCELLED, 1),
        QueueCount("extract", JobStatus.PENDING, 1),
        QueueCount("render", JobStatus.COMPLETED, 1),
        QueueCount("render", JobStatus.FAILED, 1),
        QueueCount("render", JobStatus.PROCESSING, 1),
    ]
    assert (stats.finished(JobStatus.COMPLETED), stats.finished(JobStatus.FAILED)) == (1, 1)
    assert [(seen.name, seen.processing) for seen in stats.workers] == [
        ("gpu-1", 1),
        ("gpu-2", 0),
    ]
    assert stats.workers[0].last_seen == clock()  # its heartbeat

    longer = await desk.get_queue_stats(timedelta(hours=1))
    assert longer.finished(JobStatus.COMPLETED) == 2


async def test_stats_of_an_empty_desk_and_a_bad_window(desk: JobDesk) -> None:
    stats = await desk.get_queue_stats()
    assert (stats.counts, stats.workers) == ([], [])
    with pytest.raises(InvalidInput) as refused:
        await desk.get_queue_stats(timedelta(0))
    assert refused.value.field == "window"

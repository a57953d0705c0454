"""create_jobs: many jobs for one user in one transaction, all or none, within the limits."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest

from jobdesk import Job, JobDesk, JobSpec, JobStatus, Limits, Worker
from jobdesk.changes import JobChange
from jobdesk.errors import InvalidInput, RateLimited
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk


async def test_a_batch_is_stored_in_order_with_each_jobs_history(
    desk: JobDesk, clock: ManualClock
) -> None:
    later = clock() + timedelta(hours=1)
    specs = [
        JobSpec("render", {"frame": 1}),
        JobSpec("render", {"frame": 2}, project_id="film", priority=5, max_attempts=1),
        JobSpec("thumbnail", run_at=later),
    ]
    jobs = await desk.create_jobs("alice", specs)
    assert [(job.type, job.input, job.project_id) for job in jobs] == [
        ("render", {"frame": 1}, None),
        ("render", {"frame": 2}, "film"),
        ("thumbnail", None, None),
    ]
    assert [(job.priority, job.max_attempts) for job in jobs] == [(0, 3), (5, 1), (0, 3)]
    assert jobs[2].run_at == later
    assert all(job.status is JobStatus.PENDING and job.created_at == clock() for job in jobs)
    for job in jobs:
        assert await desk.get_job_status(job.id, "alice") == job
        history = await desk.get_job_history(job.id, "alice")
        assert [event.status for event in history] == [JobStatus.PENDING]
    page = await desk.get_user_jobs("alice")
    assert [job.id for job in page.items] == [job.id for job in reversed(jobs)]
    assert (await desk.get_user_usage("alice")).created_today == 3


async def test_a_batch_that_does_not_fit_the_waiting_limit_stores_nothing(desk: JobDesk) -> None:
    await desk.set_user_limits("alice", max_waiting=10)
    await desk.create_jobs("alice", [JobSpec("demo", {"n": n}) for n in range(8)])
    with pytest.raises(RateLimited) as caught:
        await desk.create_jobs("alice", [JobSpec("demo", {"n": n}) for n in range(3)])
    assert (caught.value.limit, caught.value.allowed) == ("waiting", 10)
    usage = await desk.get_user_usage("alice")
    assert (usage.waiting, usage.created_today) == (8, 8)
    await desk.create_jobs("alice", [JobSpec("demo", {"n": n}) for n in range(2)])  # exactly
    assert (await desk.get_user_usage("alice")).waiting == 10


async def test_a_user_at_their_running_cap_may_still_create_a_batch(
    desk: JobDesk, worker: Worker
) -> None:
    await desk.set_user_limits("alice", max_running=2)
    await desk.create_jobs("alice", [JobSpec("demo") for _ in range(2)])
    assert len(await desk.claim_jobs(worker, limit=5)) == 2
    jobs = await desk.create_jobs("alice", [JobSpec("demo") for _ in range(5)])
    assert all(job.status is JobStatus.PENDING for job in jobs)
    usage = await desk.get_user_usage("alice")
    assert (usage.running, usage.waiting) == (2, 5)


async def test_a_batch_that_does_not_fit_the_daily_limit_stores_nothing(desk: JobDesk) -> None:
    await desk.set_user_limits("alice", max_daily=5, max_waiting=100)
    await desk.create_jobs("alice", [JobSpec("demo") for _ in range(4)])
    with pytest.raises(RateLimited) as caught:
        await desk.create_jobs("alice", [JobSpec("demo") for _ in range(2)])
    assert caught.value.limit == "daily"
    assert caught.value.retry_after is not None
    assert (await desk.get_user_usage("alice")).created_today == 4
    await desk.create_job("alice", "demo", {})
    with pytest.raises(RateLimited):
        await desk.create_job("alice", "demo", {})


async def test_concurrent_batches_on_several_desks_fill_the_room_and_no_more(
    open_desk: OpenDesk,
) -> None:
    async with AsyncExitStack() as stack:
        desks = [await stack.enter_async_context(open_desk()) for _ in range(4)]
        await desks[0].set_user_limits("alice", max_waiting=10)

        async def batch(desk: JobDesk) -> list[Job] | RateLimited:
            try:
                return await desk.create_jobs("alice", [JobSpec("demo") for _ in range(3)])
            except RateLimited as refused:
                return refused

        outcomes = await asyncio.gather(*(batch(desks[n % 4]) for n in range(12)))
        made = [outcome for outcome in outcomes if isinstance(outcome, list)]
        refused = [outcome for outcome in outcomes if isinstance(outcome, RateLimited)]
        assert (len(made), len(refused)) == (3, 9)  # 3 batches of 3 fit in 10
        usage = await desks[0].get_user_usage("alice")
        assert (usage.waiting, usage.created_today) == (9, 9)


async def test_subscribers_hear_of_every_job_of_a_batch(desk: JobDesk) -> None:
    async with desk.subscribe() as changes:
        jobs = await desk.create_jobs("alice", [JobSpec("demo", {"n": n}) for n in range(3)])
        heard: set[str] = set()
        while heard != {job.id for job in jobs}:
            change = await asyncio.wait_for(changes.next_change(), 10)
            if isinstance(change, JobChange):
                assert change.status is JobStatus.PENDING
                heard.add(change.job_id)


@pytest.mark.parametrize(
    ("jobs", "field"),
    [
        ([], "jobs"),
        ("demo", "jobs"),
        ([JobSpec("demo")] * 1001, "jobs"),
        ([JobSpec("demo"), {"type": "demo"}], "jobs[1]"),
        ([JobSpec("demo"), JobSpec("demo"), JobSpec("has space")], "jobs[2].type"),
        ([JobSpec("demo", {1, 2})], "jobs[0].input"),
        ([JobSpec("demo", priority=10**6)], "jobs[0].priority"),
        ([JobSpec("demo", max_attempts=0)], "jobs[0].max_attempts"),
        ([JobSpec("demo", project_id="")], "jobs[0].project_id"),
    ],
)
async def test_bad_input_is_refused_naming_the_entry(
    desk: JobDesk, jobs: object, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await desk.create_jobs("alice", jobs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert (await desk.get_user_usage("alice")).created_today == 0
    assert (await desk.get_user_jobs("alice")).items == []


async def test_a_desk_with_declared_types_refuses_others_in_a_batch(open_desk: OpenDesk) -> None:
    async with open_desk(Limits(), types=["render"]) as desk:
        with pytest.raises(InvalidInput) as caught:
            await desk.create_jobs("alice", [JobSpec("render"), JobSpec("transcode")])
        assert caught.value.field == "jobs[1].type"

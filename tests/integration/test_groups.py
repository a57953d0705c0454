"""Groups on each store: made all or nothing, followed as one, cancelled, retried, fanned in."""

from __future__ import annotations

import pytest

from jobdesk import FanIn, JobDesk, JobSpec, JobStatus, Worker
from jobdesk.errors import GroupNotFound, InvalidInput, InvalidTransition, RateLimited
from jobdesk.groups import GroupStatus, fan_in_key
from jobdesk.testing import ManualClock


async def _run(desk: JobDesk, worker: Worker, job_id: str, *, fail: bool = False) -> None:
    job = await desk.start_job(worker, job_id)
    if fail:
        await desk.fail_job(worker, job.id, "broken", retryable=False, attempt=job.attempt)
    else:
        await desk.complete_job(worker, job.id, {"n": job.input["n"]}, attempt=job.attempt)


async def test_a_group_is_made_with_its_jobs_in_order_and_reads_as_pending(
    desk: JobDesk, clock: ManualClock
) -> None:
    group = await desk.create_group(
        "alice",
        [JobSpec("episode", {"n": n}) for n in range(5)],
        project_id="book",
        name="characters",
    )
    assert (group.status, group.size, group.progress) == (GroupStatus.PENDING, 5, 0.0)
    assert (group.name, group.project_id, group.created_at) == ("characters", "book", clock())
    assert group.counts[JobStatus.PENDING] == 5
    assert await desk.get_group(group.id, "alice") == group
    jobs = await desk.get_group_jobs(group.id, "alice")
    assert [job.input for job in jobs] == [{"n": n} for n in range(5)]
    assert {job.project_id for job in jobs} == {"book"}
    assert [job.input for job in await desk.get_group_jobs(group.id, "alice", offset=3)] == [
        {"n": 3},
        {"n": 4},
    ]
    usage = await desk.get_user_usage("alice")
    assert (usage.waiting, usage.created_today) == (5, 5)


async def test_status_and_progress_follow_the_jobs(desk: JobDesk, worker: Worker) -> None:
    group = await desk.create_group("alice", [JobSpec("episode", {"n": n}) for n in range(4)])
    jobs = await desk.get_group_jobs(group.id, "alice")
    started = await desk.start_job(worker, jobs[0].id)
    await desk.update_job_progress(worker, started.id, 50, attempt=started.attempt)
    now = await desk.get_group(group.id, "alice")
    assert (now.status, now.progress) == (GroupStatus.RUNNING, 12.5)
    await desk.complete_job(worker, started.id, {"n": 0}, attempt=started.attempt)
    await _run(desk, worker, jobs[1].id)
    now = await desk.get_group(group.id, "alice")
    assert (now.status, now.progress, now.counts[JobStatus.COMPLETED]) == (
        GroupStatus.RUNNING,
        50.0,
        2,
    )
    await _run(desk, worker, jobs[2].id)
    await _run(desk, worker, jobs[3].id, fail=True)
    now = await desk.get_group(group.id, "alice")
    assert (now.status, now.progress) == (GroupStatus.PARTIALLY_FAILED, 100.0)
    assert (now.counts[JobStatus.COMPLETED], now.counts[JobStatus.FAILED]) == (3, 1)


async def test_a_group_that_does_not_fit_is_refused_whole_saying_how_many_would(
    desk: JobDesk,
) -> None:
    await desk.set_user_limits("alice", max_waiting=10)
    await desk.create_jobs("alice", [JobSpec("demo", {"n": n}) for n in range(7)])
    with pytest.raises(RateLimited) as caught:
        await desk.create_group("alice", [JobSpec("demo", {"n": n}) for n in range(4)])
    assert (caught.value.limit, caught.value.allowed, caught.value.fits) == ("waiting", 10, 3)
    assert "room for 3 more" in str(caught.value)
    assert (await desk.get_user_usage("alice")).waiting == 7
    assert (await desk.get_user_groups("alice")).items == []
    await desk.set_user_limits("alice", max_waiting=100, max_daily=9)
    with pytest.raises(RateLimited) as daily:
        await desk.create_group("alice", [JobSpec("demo", {"n": n}) for n in range(3)])
    assert (daily.value.limit, daily.value.fits) == ("daily", 2)
    group = await desk.create_group("alice", [JobSpec("demo", {"n": n}) for n in range(2)])
    assert group.size == 2


@pytest.mark.parametrize(
    ("jobs", "field"),
    [
        ([], "jobs"),
        ("not a list", "jobs"),
        ([JobSpec("ok", {"n": 1})] * 10_001, "jobs"),
        ([JobSpec("ok", {"n": 1}), {"type": "x"}], "jobs[1]"),
        ([JobSpec("ok", {"n": n}) for n in range(17)] + [JobSpec("ok", {1, 2})], "jobs[17].input"),
        ([JobSpec("Not A Type")], "jobs[0].type"),
    ],
)
async def test_bad_groups_are_refused_naming_the_field_and_nothing_is_written(
    desk: JobDesk, jobs: object, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await desk.create_group("alice", jobs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert (await desk.get_user_usage("alice")).created_today == 0
    assert (await desk.get_user_groups("alice")).items == []


async def test_bad_group_options_are_refused(desk: JobDesk) -> None:
    one = [JobSpec("ok", {"n": 1})]
    with pytest.raises(InvalidInput, match="name"):
        await desk.create_group("alice", one, name="")
    with pytest.raises(InvalidInput, match="on_complete"):
        await desk.create_group("alice", one, on_complete="merge")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as caught:
        await desk.create_group("alice", one, on_complete=FanIn("Bad Type"))
    assert caught.value.field == "on_complete.type"


async def test_another_users_group_does_not_exist_for_them(desk: JobDesk) -> None:
    group = await desk.create_group("alice", [JobSpec("ok", {"n": 1})])
    for operation in (desk.get_group, desk.cancel_group, desk.retry_group, desk.get_group_jobs):
        with pytest.raises(GroupNotFound):
            await operation(group.id, "mallory")
    assert (await desk.get_user_groups("mallory")).items == []
    with pytest.raises(InvalidInput):
        await desk.get_group("not-an-id", "alice")


async def test_groups_are_listed_newest_first_by_signed_cursor(desk: JobDesk) -> None:
    made = [await desk.create_group("alice", [JobSpec("ok", {"n": n})]) for n in range(5)]
    await desk.create_group("bob", [JobSpec("ok", {"n": 9})])
    first = await desk.get_user_groups("alice", limit=3)
    assert [group.id for group in first.items] == [group.id for group in made[::-1][:3]]
    assert first.next_cursor is not None
    second = await desk.get_user_groups("alice", limit=3, cursor=first.next_cursor)
    assert [group.id for group in second.items] == [made[1].id, made[0].id]
    assert second.next_cursor is None
    with pytest.raises(InvalidInput):
        await desk.get_user_groups("bob", cursor=first.next_cursor)
    jobs_page = await desk.get_user_jobs("alice", limit=1)
    assert jobs_page.next_cursor is not None
    with pytest.raises(InvalidInput):
        await desk.get_user_groups("alice", cursor=jobs_page.next_cursor)


async def test_cancel_group_cancels_active_jobs_and_keeps_finished_ones(
    desk: JobDesk, worker: Worker
) -> None:
    group = await desk.create_group("alice", [JobSpec("ok", {"n": n}) for n in range(3)])
    jobs = await desk.get_group_jobs(group.id, "alice")
    await _run(desk, worker, jobs[0].id)
    running = await desk.start_job(worker, jobs[1].id)
    cancelled = await desk.cancel_group(group.id, "alice")
    assert cancelled.status is GroupStatus.CANCELLED
    assert cancelled.cancelled_at is not None
    assert (cancelled.counts[JobStatus.COMPLETED], cancelled.counts[JobStatus.CANCELLED]) == (1, 2)
    assert (await desk.get_job_status(running.id, "alice")).cancel_requested
    assert (await desk.get_user_usage("alice")).waiting == 0
    again = await desk.cancel_group(group.id, "alice")
    assert again.status is GroupStatus.CANCELLED


async def test_retry_group_retries_only_failed_jobs_within_the_limits(
    desk: JobDesk, worker: Worker
) -> None:
    group = await desk.create_group("alice", [JobSpec("ok", {"n": n}) for n in range(4)])
    jobs = await desk.get_group_jobs(group.id, "alice")
    await _run(desk, worker, jobs[0].id)
    await _run(desk, worker, jobs[1].id, fail=True)
    await _run(desk, worker, jobs[2].id, fail=True)
    await desk.cancel_job(jobs[3].id, "alice")
    failed = await desk.get_group(group.id, "alice")
    assert failed.status is GroupStatus.PARTIALLY_FAILED
    await desk.set_user_limits("alice", max_daily=5)
    with pytest.raises(RateLimited) as caught:
        await desk.retry_group(group.id, "alice")
    assert caught.value.fits == 1
    assert (await desk.get_group(group.id, "alice")).counts[JobStatus.FAILED] == 2
    await desk.set_user_limits("alice", max_daily=None)
    retried = await desk.retry_group(group.id, "alice")
    assert retried.status is GroupStatus.RUNNING
    assert [retried.counts[s] for s in JobStatus] == [2, 0, 1, 0, 1]


async def test_a_group_of_only_failures_failed_and_of_only_cancels_cancelled(
    desk: JobDesk, worker: Worker
) -> None:
    failing = await desk.create_group("alice", [JobSpec("ok", {"n": n}) for n in range(2)])
    for job in await desk.get_group_jobs(failing.id, "alice"):
        await _run(desk, worker, job.id, fail=True)
    assert (await desk.get_group(failing.id, "alice")).status is GroupStatus.FAILED
    cancelled = await desk.create_group("alice", [JobSpec("ok", {"n": n}) for n in range(2)])
    for job in await desk.get_group_jobs(cancelled.id, "alice"):
        await desk.cancel_job(job.id, "alice")
    assert (await desk.get_group(cancelled.id, "alice")).status is GroupStatus.CANCELLED


async def test_the_fan_in_job_is_made_once_with_the_groups_results(
    desk: JobDesk, worker: Worker
) -> None:
    group = await desk.create_group(
        "alice",
        [JobSpec("episode", {"n": n}) for n in range(3)],
        project_id="book",
        on_complete=FanIn("merge", {"format": "csv"}),
    )
    jobs = await desk.get_group_jobs(group.id, "alice")
    await _run(desk, worker, jobs[0].id)
    await _run(desk, worker, jobs[1].id)
    assert await desk.finish_groups() == 0  # one job still pending
    await _run(desk, worker, jobs[2].id, fail=True)
    assert await desk.finish_groups() == 1
    assert await desk.finish_groups() == 0
    done = await desk.get_group(group.id, "alice")
    assert done.on_complete_job_id is not None
    fan_in = await desk.get_job_status(done.on_complete_job_id, "alice")
    assert (fan_in.type, fan_in.project_id, fan_in.idempotency_key) == (
        "merge",
        "book",
        fan_in_key(group.id),
    )
    assert fan_in.input == {
        "group_id": group.id,
        "input": {"format": "csv"},
        "jobs": [
            {"id": jobs[0].id, "status": "completed", "result": {"n": 0}},
            {"id": jobs[1].id, "status": "completed", "result": {"n": 1}},
            {"id": jobs[2].id, "status": "failed", "result": None},
        ],
    }


async def test_a_cancelled_group_makes_no_fan_in_job(desk: JobDesk) -> None:
    group = await desk.create_group("alice", [JobSpec("ok", {"n": 1})], on_complete=FanIn("merge"))
    await desk.cancel_group(group.id, "alice")
    assert await desk.finish_groups() == 0
    assert (await desk.get_group(group.id, "alice")).on_complete_job_id is None


async def test_a_group_of_ten_thousand_jobs_is_made_in_one_call(desk: JobDesk) -> None:
    await desk.set_user_limits("alice", max_waiting=20_000, max_daily=20_000)
    group = await desk.create_group("alice", [JobSpec("ok", {"n": n}) for n in range(10_000)])
    assert group.size == 10_000
    stored = await desk.get_group(group.id, "alice")
    assert (stored.size, stored.status) == (10_000, GroupStatus.PENDING)
    last = await desk.get_group_jobs(group.id, "alice", offset=9_999)
    assert [job.input for job in last] == [{"n": 9_999}]


async def test_a_finished_job_cannot_be_cancelled_through_its_group_state(
    desk: JobDesk, worker: Worker
) -> None:
    group = await desk.create_group("alice", [JobSpec("ok", {"n": 1})])
    [job] = await desk.get_group_jobs(group.id, "alice")
    await _run(desk, worker, job.id)
    with pytest.raises(InvalidTransition):
        await desk.cancel_job(job.id, "alice")
    assert (await desk.cancel_group(group.id, "alice")).status is GroupStatus.COMPLETED

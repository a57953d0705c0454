"""Retention passes on every store: the Python rule and each store's SQL agree, case by
case; batches, the one-runner lease, the recorded state, and refusals that write nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from jobdesk import Job, JobDesk, JobStatus, RetentionPolicy, Worker
from jobdesk.errors import InvalidInput
from jobdesk.retention import is_expired
from jobdesk.testing import ManualClock

pytestmark = pytest.mark.timeout(120)

#: the policy the case table runs under: every kind of row (default, override, forever)
POLICY = RetentionPolicy(
    completed=timedelta(days=7),
    failed=timedelta(days=30),
    cancelled=None,
    types={
        "render": {JobStatus.FAILED: None, JobStatus.COMPLETED: timedelta(days=1)},
        "email": {JobStatus.CANCELLED: timedelta(days=10)},
    },
)
#: how long ago each batch of jobs finished, oldest first: each side of every period
AGES = [
    timedelta(days=400),
    timedelta(days=31),
    timedelta(days=29),
    timedelta(days=11),
    timedelta(days=9),
    timedelta(days=8),
    timedelta(days=6),
    timedelta(days=2),
    timedelta(hours=12),
]
TYPES = ["render", "email", "other"]


async def finish(desk: JobDesk, worker: Worker, type_: str, status: JobStatus) -> Job:
    """One job of ``type_`` taken to ``status`` now."""
    job = await desk.create_job("user-1", type_, {})
    if status is JobStatus.CANCELLED:
        return await desk.cancel_job(job.id, "user-1")
    [claimed] = await desk.claim_jobs(worker, types=type_)
    assert claimed.id == job.id
    if status is JobStatus.COMPLETED:
        return await desk.complete_job(worker, job.id, {"ok": 1}, attempt=claimed.attempt)
    return await desk.fail_job(worker, job.id, "boom", retryable=False, attempt=claimed.attempt)


async def make_history(desk: JobDesk, worker: Worker, clock: ManualClock) -> tuple[list[Job], Job]:
    """Jobs of every type and status finished at each age of AGES, and one pending job."""
    await desk.set_user_limits("user-1", max_running=5000, max_waiting=5000, max_daily=5000)
    start = clock()
    jobs: list[Job] = []
    for age in AGES:
        clock.set(start + (AGES[0] - age))
        for type_ in TYPES:
            for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
                jobs.append(await finish(desk, worker, type_, status))
    clock.set(start + AGES[0])
    pending = await desk.create_job("user-1", "render", {})
    return jobs, pending


def expected(jobs: list[Job], now: datetime) -> tuple[set[str], dict[JobStatus, int]]:
    """The Python rule's answer: the ids kept, and the deletions by status."""
    kept: set[str] = set()
    deleted: dict[JobStatus, int] = {}
    for job in jobs:
        if is_expired(POLICY, job.status, job.type, job.finished_at, now):
            deleted[job.status] = deleted.get(job.status, 0) + 1
        else:
            kept.add(job.id)
    return kept, deleted


async def stored_ids(desk: JobDesk) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        page = await desk.get_user_jobs("user-1", limit=100, cursor=cursor)
        ids.update(job.id for job in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def test_a_pass_deletes_exactly_the_jobs_the_python_rule_calls_expired(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    jobs, pending = await make_history(desk, worker, clock)
    kept, deleted = expected(jobs, clock())
    assert kept
    assert deleted

    dry = await desk.apply_retention(POLICY, dry_run=True)
    assert dry.dry_run
    assert dict(dry.deleted) == deleted
    assert await stored_ids(desk) == {job.id for job in jobs} | {pending.id}

    report = await desk.apply_retention(POLICY, batch_size=7)
    assert report.ran
    assert dict(report.deleted) == deleted
    # full batches, then the one that came back short (possibly empty) and ended the pass
    assert report.batches == sum(deleted.values()) // 7 + 1
    assert await stored_ids(desk) == kept | {pending.id}
    gone = [job for job in jobs if job.id not in kept]
    for job in gone:  # their history went with them
        assert await desk.store.job_events(job.id) == []
    assert await desk.store.job_events(pending.id) != []
    again = await desk.apply_retention(POLICY)
    assert again.total == 0


async def test_the_default_policy_keeps_completed_a_week_and_the_rest_a_month(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    done = await finish(desk, worker, "render", JobStatus.COMPLETED)
    failed = await finish(desk, worker, "render", JobStatus.FAILED)
    cancelled = await finish(desk, worker, "render", JobStatus.CANCELLED)
    clock.advance(days=8)
    assert (await desk.apply_retention()).deleted == {JobStatus.COMPLETED: 1}
    clock.advance(days=23)
    assert dict((await desk.apply_retention()).deleted) == {
        JobStatus.FAILED: 1,
        JobStatus.CANCELLED: 1,
    }
    assert await stored_ids(desk) == set()
    assert {done.status, failed.status, cancelled.status} == {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }


async def test_max_batches_stops_early_and_says_more_is_left(
    desk: JobDesk, clock: ManualClock
) -> None:
    await desk.set_user_limits("user-1", max_running=500, max_waiting=500, max_daily=500)
    for n in range(12):
        await desk.cancel_job((await desk.create_job("user-1", "render", {"n": n})).id, "user-1")
    clock.advance(days=31)
    first = await desk.apply_retention(batch_size=5, max_batches=1)
    assert (first.total, first.batches, first.more) == (5, 1, True)
    rest = await desk.apply_retention(batch_size=5)
    assert (rest.total, rest.more) == (7, False)


async def test_one_runner_at_a_time_across_desks(
    desk: JobDesk, open_desk: object, clock: ManualClock
) -> None:
    await desk.cancel_job((await desk.create_job("user-1", "render", {})).id, "user-1")
    clock.advance(days=31)
    assert await desk.store.take_retention_lease("someone-else", 120)

    blocked = await desk.apply_retention()
    assert (blocked.ran, blocked.total) == (False, 0)
    assert (await desk.get_retention_state()).holder == "someone-else"
    assert len(await stored_ids(desk)) == 1

    clock.advance(seconds=121)  # the other holder died: its lease runs out
    report = await desk.apply_retention()
    assert (report.ran, report.total) == (True, 1)
    state = await desk.get_retention_state()
    assert state.holder is None
    assert state.last_run is not None
    assert dict(state.last_run.deleted) == {JobStatus.CANCELLED: 1}


async def test_concurrent_passes_delete_each_job_once(
    desk: JobDesk, open_desk: object, clock: ManualClock
) -> None:
    await desk.set_user_limits("user-1", max_running=500, max_waiting=500, max_daily=500)
    for n in range(40):
        await desk.cancel_job((await desk.create_job("user-1", "render", {"n": n})).id, "user-1")
    clock.advance(days=31)
    async with open_desk() as other:  # type: ignore[operator]
        reports = await asyncio.gather(
            desk.apply_retention(batch_size=3), other.apply_retention(batch_size=3)
        )
    assert sum(report.total for report in reports) == 40
    assert any(report.ran for report in reports)
    assert await stored_ids(desk) == set()


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: RetentionPolicy(completed=timedelta(days=-1)), "retention.completed"),
        (lambda: RetentionPolicy(failed=timedelta(days=365 * 100)), "retention.failed"),
        (lambda: RetentionPolicy(cancelled=timedelta(0)), "retention.cancelled"),
        (lambda: RetentionPolicy(completed=7), "retention.completed"),  # type: ignore[arg-type]
        (
            lambda: RetentionPolicy(types={"render": {"failed": timedelta(days=-3)}}),  # type: ignore[dict-item]
            "retention.types.render.failed",
        ),
        (
            lambda: RetentionPolicy(types={"render": {"pending": timedelta(days=3)}}),  # type: ignore[dict-item]
            "retention.types.render",
        ),
        (lambda: RetentionPolicy(types={"Bad Type": {}}), "retention.types"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(make: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make()  # type: ignore[operator]
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"policy": "completed=7d"}, "policy"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 10_001}, "batch_size"),
        ({"max_batches": 0}, "max_batches"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"pause": -1}, "pause"),
    ],
)
async def test_bad_arguments_are_refused_and_nothing_is_deleted(
    desk: JobDesk, clock: ManualClock, arguments: dict[str, object], field: str
) -> None:
    await desk.cancel_job((await desk.create_job("user-1", "render", {})).id, "user-1")
    clock.advance(days=400)
    with pytest.raises(InvalidInput) as caught:
        await desk.apply_retention(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert len(await stored_ids(desk)) == 1
    assert (await desk.get_retention_state()).holder is None

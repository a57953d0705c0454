"""Per-user limits: 1000 waiting and 1000 a UTC day by default, overridable, enforced atomically.

N concurrent creates for one user with room for k succeed exactly k times, whether
they share one desk, come from several desks (connections), or from threads through
the sync facade.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobdesk import Job, JobDesk, JobStatus, Worker
from jobdesk.errors import JobdeskError, RateLimited
from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk
from tests.integration.support import job_in_status, run_in_threads

CALLERS = 50
DESKS = 5


async def attempt_create(desk: JobDesk, user_id: str, n: int) -> Job | RateLimited:
    try:
        return await desk.create_job(user_id, "demo", {"n": n})
    except RateLimited as exc:
        return exc


def tally(
    outcomes: list[Job | RateLimited] | list[Job | JobdeskError],
) -> tuple[list[Job], list[str]]:
    """The jobs made and the ``limit`` of every refusal; any other outcome fails the test."""
    jobs = [outcome for outcome in outcomes if isinstance(outcome, Job)]
    refusals: list[str] = []
    for outcome in outcomes:
        if not isinstance(outcome, Job):
            assert isinstance(outcome, RateLimited), repr(outcome)
            refusals.append(outcome.limit)
    return jobs, refusals


async def test_defaults_are_ten_running_a_thousand_waiting_and_a_thousand_a_day(
    desk: JobDesk, worker: Worker
) -> None:
    usage = await desk.get_user_usage("alice")
    assert (usage.running, usage.max_running) == (0, 10)
    assert (usage.waiting, usage.max_waiting) == (0, 1000)
    assert (usage.created_today, usage.max_daily) == (0, 1000)
    for n in range(11):
        await desk.create_job("alice", "demo", {"n": n})
    # Past the running cap a job is not refused: it waits.
    assert len(await desk.claim_jobs(worker, limit=20)) == 10
    usage = await desk.get_user_usage("alice")
    assert (usage.running, usage.waiting, usage.created_today) == (10, 1, 11)
    assert (await desk.create_job("bob", "demo", {})).status is JobStatus.PENDING


async def test_the_thousand_and_first_job_of_a_day_is_refused_until_midnight(
    desk: JobDesk, clock: ManualClock
) -> None:
    await desk.set_user_limits("alice", max_waiting=5000)
    for n in range(1000):
        await desk.create_job("alice", "demo", {"n": n})
    with pytest.raises(RateLimited) as caught:
        await desk.create_job("alice", "demo", {"n": 1000})
    assert caught.value.limit == "daily"
    assert caught.value.allowed == 1000
    assert caught.value.retry_after == 12 * 3600  # the clock stands at 12:00 UTC
    assert (await desk.get_user_usage("alice")).created_today == 1000
    clock.advance(hours=12)
    assert (await desk.create_job("alice", "demo", {"n": 1000})).status is JobStatus.PENDING


async def test_retry_after_counts_the_seconds_to_the_next_utc_midnight(
    desk: JobDesk, clock: ManualClock
) -> None:
    await desk.set_user_limits("alice", max_daily=1)
    await desk.create_job("alice", "demo", {})
    for now, expected in [
        (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), 43_200),
        (datetime(2026, 3, 1, 23, 0, tzinfo=UTC), 3_600),
        (datetime(2026, 3, 1, 23, 59, 59, 500_000, tzinfo=UTC), 1),
        (datetime(2026, 3, 1, 20, 30, tzinfo=timezone(timedelta(hours=-2))), 5_400),  # 22:30 UTC
    ]:
        clock.set(now)
        with pytest.raises(RateLimited) as caught:
            await desk.create_job("alice", "demo", {})
        assert caught.value.limit == "daily"
        assert caught.value.retry_after == expected
        assert str(expected) in str(caught.value)
    usage = await desk.get_user_usage("alice")
    assert usage.resets_at == datetime(2026, 3, 2, tzinfo=UTC)


async def test_the_daily_count_starts_again_after_utc_midnight(
    desk: JobDesk, clock: ManualClock
) -> None:
    await desk.set_user_limits("alice", max_daily=3, max_waiting=100)
    clock.set(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
    for n in range(3):
        await desk.create_job("alice", "demo", {"n": n})
    with pytest.raises(RateLimited):
        await desk.create_job("alice", "demo", {})
    clock.advance(seconds=1)
    usage = await desk.get_user_usage("alice")
    assert (usage.created_today, usage.active) == (0, 3)
    for n in range(3):
        await desk.create_job("alice", "demo", {"n": n})
    with pytest.raises(RateLimited) as caught:
        await desk.create_job("alice", "demo", {})
    assert caught.value.limit == "daily"
    assert caught.value.retry_after == 86_400
    assert (await desk.get_user_usage("alice")).created_today == 3


async def test_refused_creates_do_not_count_against_the_day(desk: JobDesk) -> None:
    await desk.set_user_limits("alice", max_waiting=2, max_daily=5)
    outcomes = [await attempt_create(desk, "alice", n) for n in range(10)]
    jobs, refusals = tally(outcomes)
    assert (len(jobs), refusals) == (2, ["waiting"] * 8)
    assert (await desk.get_user_usage("alice")).created_today == 2


async def test_per_user_overrides_are_read_at_create_time(desk: JobDesk) -> None:
    await desk.set_user_limits("alice", max_waiting=2)
    await desk.create_job("alice", "demo", {"n": 1})
    await desk.create_job("alice", "demo", {"n": 2})
    with pytest.raises(RateLimited) as caught:
        await desk.create_job("alice", "demo", {"n": 3})
    assert caught.value.allowed == 2
    await desk.set_user_limits("alice", max_waiting=3)
    await desk.create_job("alice", "demo", {"n": 3})
    await desk.set_user_limits("alice", max_waiting=0)
    with pytest.raises(RateLimited):
        await desk.create_job("alice", "demo", {"n": 4})
    await desk.set_user_limits("alice", max_daily=3)  # max_waiting back to the default
    usage = await desk.get_user_usage("alice")
    assert (usage.max_waiting, usage.max_daily) == (1000, 3)
    with pytest.raises(RateLimited) as caught:
        await desk.create_job("alice", "demo", {"n": 4})
    assert caught.value.limit == "daily"
    bob = await desk.get_user_usage("bob")
    assert (bob.max_waiting, bob.max_daily) == (1000, 1000)


async def test_overrides_set_by_another_desk_apply_at_once(
    desk: JobDesk, open_desk: OpenDesk
) -> None:
    async with open_desk() as other:
        await other.set_user_limits("alice", max_waiting=1)
    await desk.create_job("alice", "demo", {})
    with pytest.raises(RateLimited):
        await desk.create_job("alice", "demo", {})


async def test_cancelling_frees_the_waiting_slot_at_once(desk: JobDesk, worker: Worker) -> None:
    await desk.set_user_limits("alice", max_waiting=1)
    job = await job_in_status(desk, worker, "alice", JobStatus.PENDING)
    with pytest.raises(RateLimited):
        await desk.create_job("alice", "demo", {})
    await desk.cancel_job(job.id, "alice")
    assert (await desk.get_user_usage("alice")).active == 0
    assert (await desk.create_job("alice", "demo", {})).status is JobStatus.PENDING


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
async def test_finished_jobs_do_not_count_as_waiting(
    desk: JobDesk, worker: Worker, status: JobStatus
) -> None:
    await desk.set_user_limits("alice", max_waiting=1)
    await job_in_status(desk, worker, "alice", status)
    assert (await desk.get_user_usage("alice")).active == 0
    assert (await desk.create_job("alice", "demo", {})).status is JobStatus.PENDING


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
async def test_retry_job_counts_against_the_waiting_limit(
    desk: JobDesk, worker: Worker, status: JobStatus
) -> None:
    await desk.set_user_limits("alice", max_waiting=2)
    job = await job_in_status(desk, worker, "alice", status)
    blockers = [await desk.create_job("alice", "demo", {"n": n}) for n in range(2)]
    with pytest.raises(RateLimited) as caught:
        await desk.retry_job(job.id, "alice")
    assert caught.value.limit == "waiting"
    assert (await desk.get_job_status(job.id, "alice")).status is status
    await desk.cancel_job(blockers[0].id, "alice")
    assert (await desk.retry_job(job.id, "alice")).status is JobStatus.PENDING
    usage = await desk.get_user_usage("alice")
    # A retry counts as a creation today, and as one more waiting job.
    assert (usage.waiting, usage.created_today) == (2, 4)
    with pytest.raises(RateLimited):
        await desk.create_job("alice", "demo", {})


# -- concurrency ------------------------------------------------------------------------------


async def fill(desk: JobDesk, user_id: str, count: int) -> None:
    """``count`` pending jobs for ``user_id``, whose waiting limit is 10."""
    await desk.set_user_limits(user_id, max_waiting=10)
    for n in range(count):
        await desk.create_job(user_id, "demo", {"prefill": n})


@pytest.mark.parametrize("room", [0, 1, 7])
async def test_concurrent_creates_on_one_desk_fill_exactly_the_room_left(
    desk: JobDesk, room: int
) -> None:
    await fill(desk, "alice", 10 - room)
    outcomes = await asyncio.gather(*(attempt_create(desk, "alice", n) for n in range(CALLERS)))
    jobs, refusals = tally(list(outcomes))
    assert len(jobs) == room
    assert refusals == ["waiting"] * (CALLERS - room)
    assert (await desk.get_user_usage("alice")).active == 10


@pytest.mark.parametrize("room", [1, 7])
async def test_concurrent_creates_on_several_desks_fill_exactly_the_room_left(
    desk: JobDesk, open_desk: OpenDesk, room: int
) -> None:
    await fill(desk, "alice", 10 - room)
    async with AsyncExitStack() as stack:
        desks = [await stack.enter_async_context(open_desk()) for _ in range(DESKS)]
        outcomes = await asyncio.gather(
            *(attempt_create(desks[n % DESKS], "alice", n) for n in range(CALLERS))
        )
    jobs, refusals = tally(list(outcomes))
    assert len(jobs) == room
    assert refusals == ["waiting"] * (CALLERS - room)
    page = await desk.get_user_jobs("alice", status=["pending", "processing"], limit=100)
    assert len(page.items) == 10


def test_concurrent_creates_from_threads_fill_exactly_the_room_left(
    store_url: str, clock: ManualClock
) -> None:
    room = 6
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        desk.set_user_limits("alice", max_waiting=10)
        for n in range(10 - room):
            desk.create_job("alice", "demo", {"prefill": n})

    def create(thread_desk: SyncJobDesk, n: int) -> Job:
        return thread_desk.create_job("alice", "demo", {"n": n})

    jobs, refusals = tally(run_in_threads(store_url, clock, CALLERS, create))
    assert len(jobs) == room
    assert refusals == ["waiting"] * (CALLERS - room)
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        usage = desk.get_user_usage("alice")
    assert (usage.active, usage.created_today) == (10, 10)


@pytest.mark.parametrize("room", [1, 9])
async def test_concurrent_creates_on_several_desks_respect_the_daily_limit(
    desk: JobDesk, open_desk: OpenDesk, room: int
) -> None:
    await desk.set_user_limits("alice", max_waiting=1000, max_daily=12)
    await fill(desk, "alice", 12 - room)
    async with AsyncExitStack() as stack:
        desks = [await stack.enter_async_context(open_desk()) for _ in range(DESKS)]
        outcomes = await asyncio.gather(
            desk.create_job("bob", "demo", {}),
            *(attempt_create(desks[n % DESKS], "alice", n) for n in range(CALLERS)),
        )
    jobs, refusals = tally(list(outcomes[1:]))
    assert len(jobs) == room
    assert refusals == ["daily"] * (CALLERS - room)
    assert (await desk.get_user_usage("alice")).created_today == 12
    assert (await desk.get_user_usage("bob")).created_today == 1


async def test_concurrent_creates_on_one_desk_respect_the_daily_limit(desk: JobDesk) -> None:
    await desk.set_user_limits("alice", max_waiting=1000, max_daily=20)
    outcomes = await asyncio.gather(*(attempt_create(desk, "alice", n) for n in range(CALLERS)))
    jobs, refusals = tally(list(outcomes))
    assert len(jobs) == 20
    assert refusals == ["daily"] * (CALLERS - 20)
    retry_afters = {outcome.retry_after for outcome in outcomes if isinstance(outcome, RateLimited)}
    assert retry_afters == {12 * 3600}


def test_concurrent_creates_from_threads_respect_the_daily_limit(
    store_url: str, clock: ManualClock
) -> None:
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        desk.set_user_limits("alice", max_waiting=1000, max_daily=17)

    def create(thread_desk: SyncJobDesk, n: int) -> Job:
        return thread_desk.create_job("alice", "demo", {"n": n})

    jobs, refusals = tally(run_in_threads(store_url, clock, CALLERS, create))
    assert len(jobs) == 17
    assert refusals == ["daily"] * (CALLERS - 17)
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        assert desk.get_user_usage("alice").created_today == 17


def test_concurrent_retries_from_threads_respect_the_waiting_limit(
    store_url: str, clock: ManualClock
) -> None:
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        desk.set_user_limits("alice", max_waiting=4, max_daily=1000)
        failed = []
        for n in range(20):
            job = desk.create_job("alice", "demo", {"n": n})
            failed.append(desk.cancel_job(job.id, "alice"))

    def retry(thread_desk: SyncJobDesk, n: int) -> Job:
        return thread_desk.retry_job(failed[n].id, "alice")

    jobs, refusals = tally(run_in_threads(store_url, clock, len(failed), retry))
    assert len(jobs) == 4
    assert refusals == ["waiting"] * 16
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        assert desk.get_user_usage("alice").active == 4

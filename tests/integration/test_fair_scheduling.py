"""Fair scheduling on each store: the claim's order across users, running caps, type
pools and rates, snooze, why a job waits, and the input the scheduling calls refuse.

Every test runs on both stores (``desk``), on the test's manual clock.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

import pytest

from jobdesk import Job, JobDesk, JobStatus, Worker
from jobdesk.errors import InvalidInput, InvalidTransition
from jobdesk.models import Waiting, WaitReason
from jobdesk.testing import ManualClock

#: a running cap no test reaches, so only the fair order decides
ROOMY = 1_000_000


async def create(
    desk: JobDesk, user_id: str, count: int, job_type: str = "demo", **options: object
) -> list[Job]:
    return [
        await desk.create_job(user_id, job_type, {"n": number}, **options)  # type: ignore[arg-type]
        for number in range(count)
    ]


async def claim_one_at_a_time(desk: JobDesk, worker: Worker, count: int) -> list[Job]:
    claimed: list[Job] = []
    for _ in range(count):
        claimed.extend(await desk.claim_jobs(worker, limit=1))
    return claimed


async def running_of(desk: JobDesk, user_id: str) -> int:
    return (await desk.get_user_usage(user_id)).running


async def waiting_of(desk: JobDesk, job: Job) -> Waiting:
    """Why ``job`` waits, as its owner sees it."""
    status = await desk.get_job_status(job.id, job.user_id)
    assert status.status is JobStatus.PENDING
    assert status.waiting is not None
    return status.waiting


# -- the order across users --------------------------------------------------------------


async def test_a_heavy_backlog_does_not_delay_a_light_users_job(
    desk: JobDesk, worker: Worker
) -> None:
    await desk.set_user_limits("heavy", max_running=ROOMY)
    await create(desk, "heavy", 200)
    assert len(await claim_one_at_a_time(desk, worker, 5)) == 5
    light = await desk.create_job("light", "demo", {"n": 0})
    next_claims = await desk.claim_jobs(worker, limit=2)
    assert light.id in {job.id for job in next_claims}


async def test_users_start_in_proportion_to_their_weights(desk: JobDesk, worker: Worker) -> None:
    await desk.set_user_limits("alice", max_running=ROOMY, weight=3.0)
    await desk.set_user_limits("bob", max_running=ROOMY, weight=1.0)
    await create(desk, "alice", 300)
    await create(desk, "bob", 300)
    claimed: list[Job] = []
    for _ in range(50):
        claimed.extend(await desk.claim_jobs(worker, limit=4))
    starts = Counter(job.user_id for job in claimed)
    assert sum(starts.values()) == 200
    assert starts["alice"] == pytest.approx(150, abs=3)


async def test_equal_users_take_turns(desk: JobDesk, worker: Worker) -> None:
    for user_id in ("alice", "bob", "carol"):
        await create(desk, user_id, 6)
    claimed = await claim_one_at_a_time(desk, worker, 9)
    assert Counter(job.user_id for job in claimed) == {"alice": 3, "bob": 3, "carol": 3}


async def test_priority_orders_only_a_users_own_jobs(desk: JobDesk, worker: Worker) -> None:
    low = await desk.create_job("alice", "demo", {"n": 0}, priority=0)
    high = await desk.create_job("alice", "demo", {"n": 1}, priority=9)
    shouting = await create(desk, "bob", 2, priority=1000)
    claimed = await claim_one_at_a_time(desk, worker, 4)
    assert [job.id for job in claimed if job.user_id == "alice"] == [high.id, low.id]
    assert Counter(job.user_id for job in claimed[:2]) == {"alice": 1, "bob": 1}
    assert {job.id for job in claimed if job.user_id == "bob"} == {job.id for job in shouting}


async def test_the_pending_view_is_what_the_claim_then_starts(
    desk: JobDesk, worker: Worker
) -> None:
    await desk.set_user_limits("alice", max_running=2)
    await desk.set_user_limits("bob", weight=2.0)
    await create(desk, "alice", 5)
    await create(desk, "bob", 5, priority=3)
    await create(desk, "carol", 2)
    await desk.claim_jobs(worker, limit=3)
    for limit in (4, 1, 10):
        pending = await desk.get_pending_jobs(worker, limit=limit)
        claimed = await desk.claim_jobs(worker, limit=limit)
        assert [job.id for job in pending] == [job.id for job in claimed]


# -- running caps ------------------------------------------------------------------------


async def test_no_more_than_max_running_of_a_users_jobs_run_and_the_rest_start_later(
    desk: JobDesk, worker: Worker
) -> None:
    await desk.set_user_limits("alice", max_running=3)
    jobs = await create(desk, "alice", 8)
    started = await desk.claim_jobs(worker, limit=10)
    assert len(started) == 3
    assert await desk.claim_jobs(worker, limit=10) == []
    assert await running_of(desk, "alice") == 3
    for job in started[:2]:
        await desk.complete_job(worker, job.id, {"ok": True}, attempt=job.attempt)
    assert len(await desk.claim_jobs(worker, limit=10)) == 2
    assert await running_of(desk, "alice") == 3
    finished = 2
    while finished < len(jobs):
        running = await desk.get_user_jobs("alice", status="processing", limit=10)
        assert 0 < len(running.items) <= 3
        for job in running.items:
            await desk.complete_job(worker, job.id, None, attempt=job.attempt)
            finished += 1
        await desk.claim_jobs(worker, limit=10)
        assert await running_of(desk, "alice") <= 3
    assert (await desk.get_user_usage("alice")).waiting == 0


async def test_a_capped_users_backlog_leaves_the_workers_to_others(
    desk: JobDesk, worker: Worker
) -> None:
    await desk.set_user_limits("heavy", max_running=2)
    await create(desk, "heavy", 50)
    await desk.claim_jobs(worker, limit=2)
    light = await create(desk, "light", 3)
    claimed = await desk.claim_jobs(worker, limit=10)
    assert [job.id for job in claimed] == [job.id for job in light]


async def test_an_expired_lease_gives_the_running_slot_back(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    await desk.set_user_limits("alice", max_running=1)
    first, second = await create(desk, "alice", 2)
    assert [job.id for job in await desk.claim_jobs(worker, limit=5)] == [first.id]
    assert await desk.claim_jobs(worker, limit=5) == []
    clock.advance(seconds=desk.limits.lease_seconds + 1)
    assert await desk.requeue_expired() == 1
    assert await running_of(desk, "alice") == 0
    assert [job.id for job in await desk.claim_jobs(worker, limit=5)] == [second.id]


async def test_start_by_id_is_refused_at_the_users_cap(desk: JobDesk, worker: Worker) -> None:
    await desk.set_user_limits("alice", max_running=1)
    first, second = await create(desk, "alice", 2)
    await desk.start_job(worker, first.id)
    with pytest.raises(InvalidTransition) as caught:
        await desk.start_job(worker, second.id)
    assert "max_running" in str(caught.value)
    assert (await desk.get_job_status(second.id, "alice")).status is JobStatus.PENDING
    assert (await desk.get_user_usage("alice")).waiting == 1


async def test_start_by_id_is_refused_when_the_types_pool_is_full(
    desk: JobDesk, worker: Worker
) -> None:
    await desk.set_type_limits("render", max_running=1)
    first = await desk.create_job("alice", "render", {})
    second = await desk.create_job("bob", "render", {})
    await desk.start_job(worker, first.id)
    with pytest.raises(InvalidTransition) as caught:
        await desk.start_job(worker, second.id)
    assert "pool" in str(caught.value)


async def test_start_by_id_counts_as_a_start_for_the_users_turn(
    desk: JobDesk, worker: Worker
) -> None:
    alice = await create(desk, "alice", 3)
    bob = await create(desk, "bob", 3)
    await desk.start_job(worker, alice[0].id)
    await desk.start_job(worker, alice[1].id)
    claimed = await desk.claim_jobs(worker, limit=2)
    assert [job.user_id for job in claimed] == ["bob", "bob"]
    assert {job.id for job in claimed} <= {job.id for job in bob}


# -- type pools and rates ----------------------------------------------------------------


async def test_a_type_pool_holds_its_jobs_and_other_types_still_start(
    desk: JobDesk, worker: Worker
) -> None:
    limits = await desk.set_type_limits("render", max_running=2)
    assert (limits.type, limits.max_running, limits.rate) == ("render", 2, None)
    await create(desk, "alice", 4, "render")
    await create(desk, "bob", 4, "render")
    other = await desk.create_job("carol", "transcode", {})
    claimed = await desk.claim_jobs(worker, limit=10)
    assert Counter(job.type for job in claimed) == {"render": 2, "transcode": 1}
    assert other.id in {job.id for job in claimed}
    assert await desk.claim_jobs(worker, limit=10) == []
    render = next(job for job in claimed if job.type == "render")
    await desk.complete_job(worker, render.id, None, attempt=render.attempt)
    assert [job.type for job in await desk.claim_jobs(worker, limit=10)] == ["render"]


async def test_a_type_rate_paces_starts_across_claims(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    await desk.set_type_limits("render", rate="2/min")
    await desk.set_user_limits("alice", max_running=ROOMY)
    await create(desk, "alice", 10, "render")
    starts = []
    for _ in range(12):  # a claim every 10 seconds for two minutes
        for job in await desk.claim_jobs(worker, limit=10):
            assert job.started_at is not None
            starts.append(job.started_at)
        clock.advance(seconds=10)
    assert len(starts) == 4
    for index, first in enumerate(starts):
        assert sum(1 for start in starts[index:] if start < first + timedelta(minutes=1)) <= 2


async def test_type_limits_are_read_back_and_removed(desk: JobDesk) -> None:
    await desk.set_type_limits("render", max_running=4, rate="60/min")
    await desk.set_type_limits("transcode", rate="5/s")
    listed = await desk.get_type_limits()
    assert [(limits.type, limits.max_running, str(limits.rate)) for limits in listed] == [
        ("render", 4, "60/min"),
        ("transcode", None, "5/s"),
    ]
    await desk.set_type_limits("render")
    assert [limits.type for limits in await desk.get_type_limits()] == ["transcode"]


# -- snooze ------------------------------------------------------------------------------


async def test_a_snoozed_job_keeps_its_attempt_and_waits_until_its_time(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    await desk.create_job("alice", "demo", {})
    (started,) = await desk.claim_jobs(worker)
    snoozed = await desk.snooze_job(worker, started.id, 60, attempt=started.attempt)
    assert snoozed.status is JobStatus.PENDING
    assert snoozed.attempts_left == snoozed.max_attempts
    assert snoozed.run_at == clock() + timedelta(seconds=60)
    assert snoozed.error is None
    waiting = await waiting_of(desk, snoozed)
    assert waiting.reason is WaitReason.SCHEDULED
    assert (await desk.get_user_usage("alice")).waiting == 1
    assert await desk.claim_jobs(worker) == []
    clock.advance(seconds=60)
    (again,) = await desk.claim_jobs(worker)
    assert again.id == started.id
    assert again.attempts_used == 1


# -- why a job waits ---------------------------------------------------------------------


async def test_a_job_for_later_is_scheduled(desk: JobDesk, clock: ManualClock) -> None:
    later = clock() + timedelta(hours=1)
    job = await desk.create_job("alice", "demo", {}, run_at=later)
    waiting = await waiting_of(desk, job)
    assert waiting.reason is WaitReason.SCHEDULED
    assert waiting.until == later


async def test_a_failed_job_waits_in_backoff(desk: JobDesk, worker: Worker) -> None:
    await desk.create_job("alice", "demo", {})
    (started,) = await desk.claim_jobs(worker)
    failed = await desk.fail_job(worker, started.id, "flaky", attempt=started.attempt)
    waiting = await waiting_of(desk, failed)
    assert waiting.reason is WaitReason.BACKOFF
    assert waiting.until == failed.run_at


async def test_a_job_past_the_users_cap_waits_for_the_running_limit(
    desk: JobDesk, worker: Worker
) -> None:
    await desk.set_user_limits("alice", max_running=2)
    jobs = await create(desk, "alice", 3)
    await desk.claim_jobs(worker, limit=5)
    waiting = await waiting_of(desk, jobs[2])
    assert waiting.reason is WaitReason.USER_RUNNING_LIMIT
    assert (waiting.running, waiting.limit) == (2, 2)


async def test_a_job_of_a_full_pool_waits_for_the_pool(desk: JobDesk, worker: Worker) -> None:
    await desk.set_type_limits("render", max_running=1)
    await desk.create_job("bob", "render", {})
    await desk.claim_jobs(worker)
    job = await desk.create_job("alice", "render", {})
    waiting = await waiting_of(desk, job)
    assert waiting.reason is WaitReason.TYPE_POOL
    assert (waiting.running, waiting.limit) == (1, 1)


async def test_a_job_of_a_spent_rate_waits_for_the_rate(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    await desk.set_type_limits("render", rate="1/min")
    await desk.create_job("bob", "render", {})
    await desk.claim_jobs(worker)
    job = await desk.create_job("alice", "render", {})
    waiting = await waiting_of(desk, job)
    assert waiting.reason is WaitReason.TYPE_RATE
    assert waiting.until == clock() + timedelta(minutes=1)


async def test_a_job_that_could_start_is_queued_behind_the_users_own(desk: JobDesk) -> None:
    jobs = await create(desk, "alice", 3)
    urgent = await desk.create_job("alice", "demo", {}, priority=5)
    waiting = await waiting_of(desk, jobs[2])
    assert waiting.reason is WaitReason.QUEUED
    assert waiting.ahead == 3
    status = await desk.get_job_status(urgent.id, "alice")
    assert status.waiting is not None
    assert status.waiting.ahead == 0


async def test_a_job_that_is_not_pending_does_not_wait(desk: JobDesk, worker: Worker) -> None:
    await desk.create_job("alice", "demo", {})
    (started,) = await desk.claim_jobs(worker)
    assert (await desk.get_job_status(started.id, "alice")).waiting is None


# -- the waiting count -------------------------------------------------------------------


async def test_the_waiting_count_follows_every_move_in_and_out_of_pending(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    async def waiting() -> int:
        usage = await desk.get_user_usage("alice")
        pending = await desk.get_user_jobs("alice", status="pending", limit=100)
        assert usage.waiting == len(pending.items)
        return usage.waiting

    jobs = await create(desk, "alice", 4)
    assert await waiting() == 4
    await desk.cancel_job(jobs[3].id, "alice")
    assert await waiting() == 3
    first, second, third = await desk.claim_jobs(worker, limit=3)
    assert await waiting() == 0
    await desk.fail_job(worker, first.id, "flaky", attempt=first.attempt)
    assert await waiting() == 1
    await desk.release_job(worker, second.id, attempt=second.attempt)
    assert await waiting() == 2
    await desk.snooze_job(worker, third.id, 5, attempt=third.attempt)
    assert await waiting() == 3
    await desk.cancel_job(third.id, "alice")
    await desk.retry_job(third.id, "alice")
    assert await waiting() == 3
    clock.advance(hours=2)
    started = await desk.claim_jobs(worker, limit=5)
    assert await waiting() == 0
    clock.advance(seconds=desk.limits.lease_seconds + 1)
    await desk.requeue_expired()
    assert await waiting() == len(started)


# -- bad input writes nothing ------------------------------------------------------------


@pytest.mark.parametrize("weight", [0, -1.0, math.nan, math.inf, -math.inf, 1000.5, True, "2"])
async def test_a_bad_weight_is_refused_and_changes_nothing(desk: JobDesk, weight: object) -> None:
    await desk.set_user_limits("alice", max_running=4, weight=2.0)
    with pytest.raises(InvalidInput) as caught:
        await desk.set_user_limits("alice", weight=weight)  # type: ignore[arg-type]
    assert caught.value.field == "weight"
    usage = await desk.get_user_usage("alice")
    assert (usage.weight, usage.max_running) == (2.0, 4)


@pytest.mark.parametrize("field", ["max_running", "max_waiting", "max_daily"])
async def test_a_negative_user_cap_is_refused_naming_it(desk: JobDesk, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await desk.set_user_limits("alice", **{field: -1})
    assert caught.value.field == field
    usage = await desk.get_user_usage("alice")
    assert (usage.max_running, usage.max_waiting, usage.max_daily) == (10, 1000, 1000)


@pytest.mark.parametrize(
    ("job_type", "options", "field"),
    [
        ("render", {"rate": "5/fortnight"}, "rate"),
        ("render", {"rate": "0/min"}, "rate"),
        ("render", {"rate": ""}, "rate"),
        ("render", {"max_running": -1}, "max_running"),
        ("render", {"max_running": 1.5}, "max_running"),
        ("Not A Type!", {"max_running": 2}, "type"),
        ("", {"rate": "1/s"}, "type"),
    ],
)
async def test_bad_type_limits_are_refused_and_change_nothing(
    desk: JobDesk, job_type: str, options: dict[str, object], field: str
) -> None:
    await desk.set_type_limits("transcode", max_running=3)
    with pytest.raises(InvalidInput) as caught:
        await desk.set_type_limits(job_type, **options)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert [(limits.type, limits.max_running) for limits in await desk.get_type_limits()] == [
        ("transcode", 3)
    ]


@pytest.mark.parametrize("delay", [-1, -0.001, 30 * 86_400 + 1, math.nan, math.inf])
async def test_a_bad_snooze_delay_is_refused_and_the_job_keeps_running(
    desk: JobDesk, worker: Worker, delay: float
) -> None:
    await desk.create_job("alice", "demo", {})
    (started,) = await desk.claim_jobs(worker)
    with pytest.raises(InvalidInput) as caught:
        await desk.snooze_job(worker, started.id, delay, attempt=started.attempt)
    assert caught.value.field == "delay"
    assert (await desk.get_job_status(started.id, "alice")).status is JobStatus.PROCESSING

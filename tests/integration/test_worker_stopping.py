"""How the worker runtime stops a job: cancellation, timeouts, shutdown, a lost lease."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from jobdesk import JobDesk, JobStatus, Limits
from jobdesk.errors import Unauthorized
from jobdesk.testing import ManualClock
from jobdesk.worker import DeskTransport, JobContext, Registry, SyncJobContext, WorkerRuntime
from tests.conftest import OpenDesk
from tests.integration.worker_support import HeartbeatWatch, runtime, wait_until


async def test_a_cancelled_job_s_handler_is_told_and_nothing_more_is_written(
    desk: JobDesk,
) -> None:
    registry = Registry()
    steps_after_cancel: list[bool] = []

    @registry.handler("long")
    async def long(ctx: JobContext, payload: Any) -> str:
        await ctx.progress(10, "started")
        await desk.cancel_job(ctx.job.id, ctx.job.user_id)
        await ctx.progress(20, "the reply to this one says cancelled")
        steps_after_cancel.append(ctx.cancelled)
        await ctx.progress(30, "not written")
        return "a result nobody will see"

    job = await desk.create_job("user-1", "long", {})
    worker = await runtime(desk, registry, cancel_grace=10)
    await worker.run(until_empty=True)

    assert steps_after_cancel == [True]
    after = await desk.get_job_status(job.id, "user-1")
    assert (after.status, after.progress, after.progress_message, after.result) == (
        JobStatus.CANCELLED,
        10,
        "started",
        None,
    )
    assert worker.outcomes == {"dropped": 1}


async def test_a_handler_that_ignores_cancellation_is_cancelled_after_the_grace(
    desk: JobDesk,
) -> None:
    registry = Registry()
    interrupted = asyncio.Event()

    @registry.handler("stubborn")
    async def stubborn(ctx: JobContext, payload: Any) -> None:
        await desk.cancel_job(ctx.job.id, ctx.job.user_id)
        await ctx.progress(50)  # answers cancel_requested: the grace period starts
        try:
            await asyncio.Event().wait()  # never set: only cancellation ends this
        except asyncio.CancelledError:
            interrupted.set()
            raise

    job = await desk.create_job("user-1", "stubborn", {})
    worker = await runtime(desk, registry, cancel_grace=0.05)
    await asyncio.wait_for(worker.run(until_empty=True), 10)

    assert interrupted.is_set()
    assert (await desk.get_job_status(job.id, "user-1")).status is JobStatus.CANCELLED
    assert worker.outcomes == {"dropped": 1}


async def test_a_heartbeat_brings_the_cancellation_to_a_silent_handler(
    open_desk: OpenDesk,
) -> None:
    registry = Registry()
    noticed = threading.Event()

    @registry.handler("silent")
    def silent(ctx: SyncJobContext, payload: Any) -> str:
        # A blocking handler that never reports: only heartbeats renew its lease.
        noticed.wait(timeout=10)
        return "too late"

    # A lease of 0.3 s (the store's clock stands still) means a heartbeat every 0.1 s.
    async with open_desk(Limits(lease_seconds=0.3)) as desk:
        job = await desk.create_job("user-1", "silent", {})
        worker = await runtime(desk, registry, cancel_grace=0)
        running = asyncio.create_task(worker.run(until_empty=True))
        await wait_until(lambda: worker.running)
        await desk.cancel_job(job.id, "user-1")
        await asyncio.wait_for(running, 10)
        noticed.set()

        assert worker.outcomes == {"dropped": 1}
        assert (await desk.get_job_status(job.id, "user-1")).result is None


async def test_a_handler_past_its_timeout_is_cancelled_and_the_attempt_fails(
    desk: JobDesk,
) -> None:
    registry = Registry()
    interrupted = asyncio.Event()

    @registry.handler("slow", timeout=0.05)
    async def slow(ctx: JobContext, payload: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            interrupted.set()
            raise

    job = await desk.create_job("user-1", "slow", {})
    await asyncio.wait_for((await runtime(desk, registry)).run(until_empty=True), 10)

    assert interrupted.is_set()
    after = await desk.get_job_status(job.id, "user-1")
    assert after.status is JobStatus.PENDING  # retryable: two attempts are left
    assert after.error == {
        "message": "the handler ran longer than its timeout of 0.05 s",
        "code": "timeout",
    }


async def test_on_stop_a_running_job_may_finish_within_the_grace(desk: JobDesk) -> None:
    registry = Registry()
    finish = asyncio.Event()

    @registry.handler("short")
    async def short(ctx: JobContext, payload: Any) -> str:
        await finish.wait()
        return "finished"

    job = await desk.create_job("user-1", "short", {})
    queued = await desk.create_job("user-1", "short", {})
    worker = await runtime(desk, registry, grace=30)
    running = asyncio.create_task(worker.run())
    await wait_until(lambda: worker.running)

    worker.stop()
    finish.set()
    await asyncio.wait_for(running, 10)

    assert (await desk.get_job_status(job.id, "user-1")).status is JobStatus.COMPLETED
    # Stopped workers claim nothing more.
    assert (await desk.get_job_status(queued.id, "user-1")).status is JobStatus.PENDING
    assert worker.outcomes == {"completed": 1}


@pytest.mark.parametrize("second_stop", [False, True])
async def test_a_job_still_running_after_the_grace_is_handed_back_unspent(
    desk: JobDesk, second_stop: bool
) -> None:
    registry = Registry()
    answers: list[str] = []

    @registry.handler("endless")
    async def endless(ctx: JobContext, payload: Any) -> str:
        while not ctx.cancelled:  # noqa: ASYNC110 - a handler polls between steps of work
            await asyncio.sleep(0.01)
        answers.append("partial")  # returned after the stop: must not be stored
        return "partial"

    job = await desk.create_job("user-1", "endless", {}, max_attempts=1)
    # With a second stop the grace would be an hour: the second stop cuts it short.
    worker = await runtime(desk, registry, grace=3600 if second_stop else 0.05)
    running = asyncio.create_task(worker.run())
    await wait_until(lambda: worker.running)

    worker.stop()
    if second_stop:
        worker.stop()
    await asyncio.wait_for(running, 10)

    after = await desk.get_job_status(job.id, "user-1")
    assert (after.status, after.result, after.attempts_left, after.worker_id) == (
        JobStatus.PENDING,
        None,
        1,
        None,
    )
    assert worker.outcomes == {"released": 1}


async def test_a_stale_attempt_cannot_overwrite_the_attempt_that_replaced_it(
    desk: JobDesk, clock: ManualClock
) -> None:
    registry = Registry()
    release_stale = asyncio.Event()

    @registry.handler("render")
    async def render(ctx: JobContext, payload: Any) -> str:
        if ctx.job.attempt == 1:
            await release_stale.wait()  # paused past its lease, like a SIGSTOPped process
        return f"from attempt {ctx.job.attempt}"

    job = await desk.create_job("user-1", "render", {})
    stale = await runtime(desk, registry)
    stale_run = asyncio.create_task(stale.run(until_empty=True))
    await wait_until(lambda: stale.running)

    clock.advance(seconds=desk.limits.lease_seconds + 1)
    assert await desk.requeue_expired() == 1
    clock.advance(seconds=desk.limits.retry_backoff_seconds)  # the requeue's backoff
    fresh = await runtime(desk, registry)
    await asyncio.wait_for(fresh.run(until_empty=True), 10)
    release_stale.set()
    await asyncio.wait_for(stale_run, 10)

    after = await desk.get_job_status(job.id, "user-1")
    assert (after.status, after.result, after.attempt) == (
        JobStatus.COMPLETED,
        "from attempt 2",
        2,
    )
    assert after.worker_id == fresh.transport.worker_name
    assert (stale.outcomes, fresh.outcomes) == ({"dropped": 1}, {"completed": 1})
    history = await desk.get_job_history(job.id, "user-1")
    assert [event.status for event in history].count(JobStatus.COMPLETED) == 1


async def test_heartbeats_keep_a_silent_handler_s_lease_past_its_length(store_url: str) -> None:
    registry = Registry()
    watch: HeartbeatWatch | None = None

    @registry.handler("quiet")
    async def quiet(ctx: JobContext, payload: Any) -> str:
        assert watch is not None
        watch.start()
        # Silent until a heartbeat went out more than three leases later.
        await asyncio.wait_for(watch.past.wait(), 10)
        return "still mine"

    # The real clock: leases of 0.3 s do run out, and the reaper runs every 0.05 s.
    async with JobDesk.open(store_url, limits=Limits(lease_seconds=0.3)) as desk:
        job = await desk.create_job("user-1", "quiet", {})
        plain = await runtime(desk, registry)
        assert isinstance(plain.transport, DeskTransport)
        watch = HeartbeatWatch(plain.transport, seconds=1.0)
        worker = WorkerRuntime(registry, watch, reap_interval=0.05)
        await asyncio.wait_for(worker.run(until_empty=True), 10)

        after = await desk.get_job_status(job.id, "user-1")
        assert (after.status, after.attempt, after.result) == (JobStatus.COMPLETED, 1, "still mine")
        assert worker.outcomes == {"completed": 1}
        assert watch.heartbeats >= 3


@pytest.mark.parametrize("how", ["timeout", "second stop"])
async def test_a_handler_that_swallows_its_cancellation_is_abandoned(
    desk: JobDesk, how: str
) -> None:
    registry = Registry()
    release = asyncio.Event()
    started = asyncio.Event()
    swallowed: list[str] = []

    @registry.handler("stubborn", timeout=0.05 if how == "timeout" else None)
    async def stubborn(ctx: JobContext, payload: Any) -> str:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:  # a handler that must not do this
                swallowed.append(ctx.job.id)
        return "too late"

    job = await desk.create_job("user-1", "stubborn", {}, max_attempts=2)
    worker = await runtime(desk, registry, grace=3600)
    running = asyncio.create_task(worker.run(until_empty=how == "timeout"))
    if how == "second stop":
        # The handler itself must be running: a task cancelled before its first step
        # never gets the chance to swallow anything.
        await asyncio.wait_for(started.wait(), 10)
        worker.stop()
        worker.stop()
    # Bounded: the runtime waits ABANDON_AFTER for the handler, then leaves it.
    await asyncio.wait_for(running, 10)

    assert swallowed == [job.id]
    assert worker.abandoned == 1
    after = await desk.get_job_status(job.id, "user-1")
    assert (after.status, after.result, after.worker_id) == (JobStatus.PENDING, None, None)
    if how == "timeout":
        assert after.error == {
            "message": "the handler ran longer than its timeout of 0.05 s",
            "code": "timeout",
        }
        assert worker.outcomes == {"retried": 1}
    else:
        assert after.attempts_left == 2  # handed back, its attempt unspent
        assert worker.outcomes == {"released": 1}

    release.set()  # the abandoned handler ends; what it returns is not stored
    await wait_until(lambda: worker.abandoned == 0)
    assert (await desk.get_job_status(job.id, "user-1")).result is None


async def test_a_revoked_token_stops_a_running_worker_and_hands_its_job_back(
    desk: JobDesk,
) -> None:
    registry = Registry()

    @registry.handler("endless")
    async def endless(ctx: JobContext, payload: Any) -> None:
        await asyncio.Event().wait()  # only the stop ends it

    job = await desk.create_job("user-1", "endless", {})
    worker = await runtime(desk, registry, grace=3600, reap_interval=0.05)
    running = asyncio.create_task(worker.run())
    await wait_until(lambda: worker.running)

    assert await desk.revoke_worker_token(worker.transport.worker_name) == 1
    with pytest.raises(Unauthorized):
        await asyncio.wait_for(running, 10)  # at its next check, grace or not

    after = await desk.get_job_status(job.id, "user-1")
    assert (after.status, after.worker_id, after.attempts_left) == (JobStatus.PENDING, None, 3)
    assert worker.outcomes == {"released": 1}

"""Prefetch: claimed jobs that wait in the worker for a slot, and the cycle that feeds them.

The batcher hands in what finished and claims what is next in one call; with
quick handlers the worker holds jobs ahead so that those calls carry many jobs
each. Slow handlers get no prefetch (their queue-mates stay for other workers),
and a stop hands waiting jobs back with their attempt unspent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobdesk import Job, JobDesk, JobStatus, Limits
from jobdesk.errors import InvalidInput
from jobdesk.worker import DeskTransport, JobContext, Registry, WorkerRuntime
from jobdesk.worker.runtime import MAX_CLAIM
from tests.conftest import OpenDesk
from tests.integration.worker_support import CountingTransport, runtime, wait_until


async def counting(
    desk: JobDesk, registry: Registry, *, round_trip: float = 0.0, **options: Any
) -> WorkerRuntime:
    plain = await runtime(desk, registry)
    assert isinstance(plain.transport, DeskTransport)
    return WorkerRuntime(
        registry, CountingTransport(plain.transport, round_trip=round_trip), **options
    )


async def test_quick_handlers_get_jobs_ahead_and_commits_carry_many(desk: JobDesk) -> None:
    registry = Registry()
    ran: list[str] = []

    @registry.handler("quick")
    async def quick(ctx: JobContext, payload: Any) -> int:
        ran.append(ctx.job.id)
        await asyncio.sleep(0.001)
        return len(ran)

    jobs = [await desk.create_job(f"user-{n % 10}", "quick", {}) for n in range(60)]
    # Each commit takes 20 ms, handlers 1 ms: while one travels, the slots run the
    # jobs held ahead, and the next commit carries them all.
    worker = await counting(desk, registry, concurrency=2, round_trip=0.02)
    await worker.run(until_empty=True)

    assert sorted(ran) == sorted(job.id for job in jobs)  # each ran once
    assert worker.outcomes == {"completed": 60}
    transport = worker.transport
    assert isinstance(transport, CountingTransport)
    assert max(transport.limits) > 2  # claimed beyond its two slots
    assert max(worker.batch_sizes) > 2  # and committed more than two at a time
    assert all(limit <= MAX_CLAIM for limit in transport.limits)
    for job in jobs:
        done = await desk.get_job_status(job.id, job.user_id)
        assert (done.status, done.attempt) == (JobStatus.COMPLETED, 1)


async def test_slow_handlers_get_no_prefetch(desk: JobDesk) -> None:
    registry = Registry()

    @registry.handler("slow")
    async def slow(ctx: JobContext, payload: Any) -> None:
        await asyncio.sleep(0.25)

    for n in range(3):
        await desk.create_job(f"user-{n}", "slow", {})
    worker = await counting(desk, registry, concurrency=1)
    await worker.run(until_empty=True)

    assert worker.outcomes == {"completed": 3}
    transport = worker.transport
    assert isinstance(transport, CountingTransport)
    assert set(transport.limits) == {1}  # never more than its one slot


async def test_without_prefetch_claims_stay_within_the_free_slots(desk: JobDesk) -> None:
    registry = Registry()

    @registry.handler("quick")
    async def quick(ctx: JobContext, payload: Any) -> None:
        return None

    for n in range(30):
        await desk.create_job(f"user-{n % 10}", "quick", {})
    worker = await counting(desk, registry, concurrency=3, prefetch=0)
    await worker.run(until_empty=True)

    assert worker.outcomes == {"completed": 30}
    transport = worker.transport
    assert isinstance(transport, CountingTransport)
    assert max(transport.limits) <= 3


async def test_a_stop_hands_waiting_jobs_back_unspent(desk: JobDesk) -> None:
    registry = Registry()
    started = asyncio.Event()
    release = asyncio.Event()

    @registry.handler("held")
    async def held(ctx: JobContext, payload: Any) -> str:
        started.set()
        await release.wait()
        return "done"

    jobs = [await desk.create_job(f"user-{n}", "held", {}) for n in range(6)]
    worker = await runtime(desk, registry, concurrency=1, prefetch=5)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 15)
    await wait_until(lambda: len(worker.running) == 1)
    [first] = worker.running

    worker.stop()
    release.set()
    await asyncio.wait_for(running, 15)

    assert worker.outcomes == {"completed": 1, "released": 5}
    for job in jobs:
        stored = await desk.get_job_status(job.id, job.user_id)
        if job.id == first.id:
            assert stored.status is JobStatus.COMPLETED
        else:
            assert (stored.status, stored.attempts_left) == (JobStatus.PENDING, 3)
            assert stored.worker_id is None


@pytest.mark.parametrize("prefetch", [-1, 10_001, 1.5, True, "3"])
async def test_prefetch_must_be_a_count(desk: JobDesk, prefetch: object) -> None:
    registry = Registry()
    registry.add("quick", lambda ctx, payload: None)
    with pytest.raises(InvalidInput) as caught:
        await runtime(desk, registry, prefetch=prefetch)
    assert caught.value.field == "prefetch"


async def test_a_job_that_waited_a_third_of_its_lease_is_handed_back_not_started(
    open_desk: OpenDesk,
) -> None:
    registry = Registry()
    ran: list[str] = []

    @registry.handler("mixed")
    async def mixed(ctx: JobContext, payload: Any) -> None:
        ran.append(ctx.job.id)
        if payload.get("slow"):
            await asyncio.sleep(1.2)  # the waiting jobs' leases (3 s) are a third gone

    # Long enough that only the slow job, not a busy machine, makes anything wait 1 s.
    async with open_desk(Limits(lease_seconds=3)) as desk:
        slow = await desk.create_job("user-1", "mixed", {"slow": True})
        quick = [await desk.create_job("user-1", "mixed", {}) for _ in range(3)]
        worker = await counting(desk, registry, concurrency=1, prefetch=3)
        await asyncio.wait_for(worker.run(until_empty=True), 10)

        # The quick jobs were claimed with the slow one, waited behind it past a third
        # of their lease, were handed back unspent, claimed again, and ran once each.
        assert worker.outcomes == {"completed": 4, "released": 3}
        assert sorted(ran) == sorted([slow.id, *(job.id for job in quick)])
        for job in quick:
            done = await desk.get_job_status(job.id, "user-1")
            assert (done.status, done.attempts_left, done.error) == (
                JobStatus.COMPLETED,
                2,
                None,
            )


class _SlowFirstAnswer(CountingTransport):
    """The first claim's answer arrives late, as from a process paused meanwhile."""

    async def claim(self, types: frozenset[str], limit: int) -> list[Job]:
        claimed = await super().claim(types, limit)
        if self.claims == 1:
            await asyncio.sleep(1.2)
        return claimed


async def test_a_claim_answered_after_a_third_of_the_lease_is_handed_back(
    open_desk: OpenDesk,
) -> None:
    registry = Registry()
    ran: list[int] = []

    @registry.handler("quick")
    async def quick(ctx: JobContext, payload: Any) -> None:
        ran.append(ctx.job.attempt)

    async with open_desk(Limits(lease_seconds=3)) as desk:
        job = await desk.create_job("user-1", "quick", {})
        plain = await runtime(desk, registry)
        assert isinstance(plain.transport, DeskTransport)
        worker = WorkerRuntime(registry, _SlowFirstAnswer(plain.transport), prefetch=0)
        await asyncio.wait_for(worker.run(until_empty=True), 10)

        # Counted from when the claim was sent, its lease was a third gone on arrival:
        # not started, handed back unspent, claimed again and run once.
        assert worker.outcomes == {"released": 1, "completed": 1}
        assert ran == [2]
        done = await desk.get_job_status(job.id, "user-1")
        assert (done.status, done.attempts_left) == (JobStatus.COMPLETED, 2)

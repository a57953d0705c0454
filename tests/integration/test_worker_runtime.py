"""The worker runtime in drain mode, in-process, on every store: runs, outcomes, batching."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from jobdesk import Completion, Job, JobDesk, JobStatus
from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.testing import ManualClock
from jobdesk.worker import (
    DeskTransport,
    Fail,
    JobContext,
    Registry,
    Retry,
    SyncJobContext,
    WorkerRuntime,
)
from jobdesk.worker.runtime import RESYNC_SPACING
from tests.conftest import OpenDesk
from tests.integration.worker_support import CountingTransport, runtime, wait_until


async def status_of(desk: JobDesk, job: Job) -> Job:
    return await desk.get_job_status(job.id, job.user_id)


async def test_drain_mode_runs_every_due_job_then_returns(desk: JobDesk) -> None:
    registry = Registry()
    threads: list[str] = []

    @registry.handler("double")
    async def double(ctx: JobContext, payload: dict[str, int]) -> dict[str, int]:
        return {"n": payload["n"] * 2}

    @registry.handler("blocking")
    def blocking(ctx: SyncJobContext, payload: dict[str, int]) -> int:
        threads.append(threading.current_thread().name)
        ctx.progress(50, "half way, from a thread")
        return payload["n"] + 1

    jobs = [await desk.create_job("user-1", "double", {"n": n}) for n in range(5)]
    jobs += [await desk.create_job("user-2", "blocking", {"n": n}) for n in range(3)]
    worker = await runtime(desk, registry, concurrency=3)

    await asyncio.wait_for(worker.run(until_empty=True), 30)

    finished = [await status_of(desk, job) for job in jobs]
    assert [job.status for job in finished] == [JobStatus.COMPLETED] * 8
    assert [job.result for job in finished] == [{"n": n * 2} for n in range(5)] + [1, 2, 3]
    assert all(job.progress == 100 and job.attempt == 1 for job in finished)
    assert threads == ["jobdesk-handler"] * 3  # def handlers ran off the event loop's thread
    assert worker.outcomes == {"completed": 8}
    assert worker.running == []


async def test_progress_reports_reach_the_job_while_it_runs(desk: JobDesk) -> None:
    registry = Registry()
    seen: list[tuple[float, str | None]] = []

    @registry.handler("steps")
    async def steps(ctx: JobContext, payload: list[str]) -> None:
        for done, step in enumerate(payload, start=1):
            await ctx.progress(100 * done / len(payload), f"step {step}")
            stored = await desk.get_job_status(ctx.job.id, ctx.job.user_id)
            seen.append((stored.progress, stored.progress_message))

    await desk.create_job("user-1", "steps", ["a", "b", "c", "d"])
    await (await runtime(desk, registry)).run(until_empty=True)

    assert seen == [(25, "step a"), (50, "step b"), (75, "step c"), (100, "step d")]


async def test_handler_errors_are_stored_with_their_type_and_message(
    desk: JobDesk, clock: ManualClock
) -> None:
    registry = Registry()

    @registry.handler("broken")
    async def broken(ctx: JobContext, payload: Any) -> None:
        raise ValueError("episode ep-3 has no subtitles")

    @registry.handler("refusing")
    async def refusing(ctx: JobContext, payload: Any) -> None:
        raise Fail("no such episode", code="bad_input", details={"episode": "ep-9"})

    @registry.handler("busy")
    async def busy(ctx: JobContext, payload: Any) -> None:
        raise Retry("the model server is busy", after=30, code="busy")

    broken_job = await desk.create_job("user-1", "broken", {})
    refused_job = await desk.create_job("user-1", "refusing", {})
    busy_job = await desk.create_job("user-1", "busy", {})
    worker = await runtime(desk, registry, concurrency=3)
    await worker.run(until_empty=True)

    broken_now = await status_of(desk, broken_job)
    assert broken_now.status is JobStatus.PENDING  # retryable: attempts remain, after a backoff
    assert broken_now.error == {"message": "episode ep-3 has no subtitles", "code": "ValueError"}
    refused_now = await status_of(desk, refused_job)
    assert refused_now.status is JobStatus.FAILED
    assert refused_now.error == {
        "message": "no such episode",
        "code": "bad_input",
        "details": {"episode": "ep-9"},
    }
    busy_now = await status_of(desk, busy_job)
    assert busy_now.status is JobStatus.PENDING
    assert busy_now.run_at == clock() + timedelta(seconds=30)  # Retry(after=30)
    assert busy_now.error == {"message": "the model server is busy", "code": "busy"}
    assert worker.outcomes == {"retried": 2, "failed": 1}


async def test_the_handler_s_max_attempts_makes_a_failure_final_sooner(desk: JobDesk) -> None:
    registry = Registry()

    @registry.handler("flaky", max_attempts=1)
    async def flaky(ctx: JobContext, payload: Any) -> None:
        raise ConnectionError("the GPU box went away")

    job = await desk.create_job("user-1", "flaky", {}, max_attempts=5)
    await (await runtime(desk, registry)).run(until_empty=True)

    now = await status_of(desk, job)
    assert (now.status, now.attempt, now.error) == (
        JobStatus.FAILED,
        1,
        {"message": "the GPU box went away", "code": "ConnectionError"},
    )


async def test_a_result_that_is_not_json_fails_only_its_own_job(desk: JobDesk) -> None:
    registry = Registry()
    all_running = asyncio.Event()
    started: list[int] = []

    @registry.handler("answer")
    async def answer(ctx: JobContext, payload: dict[str, int]) -> object:
        started.append(payload["n"])
        if len(started) == 3:
            all_running.set()
        await all_running.wait()  # all three finish together, in one batch
        return {1, 2} if payload["n"] == 1 else payload["n"]

    jobs = [await desk.create_job("user-1", "answer", {"n": n}) for n in range(3)]
    worker = await runtime(desk, registry, concurrency=3)
    await worker.run(until_empty=True)

    statuses = [(await status_of(desk, job)).status for job in jobs]
    assert statuses == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED]
    bad = await status_of(desk, jobs[1])
    assert bad.error is not None
    assert bad.error["code"] == "invalid_result"
    assert "result" in bad.error["message"]


async def test_completions_that_finish_together_share_one_commit(desk: JobDesk) -> None:
    registry = Registry()
    all_running = asyncio.Event()
    started: list[str] = []

    @registry.handler("together")
    async def together(ctx: JobContext, payload: Any) -> str:
        started.append(ctx.job.id)
        if len(started) == 8:
            all_running.set()
        await all_running.wait()
        return ctx.job.id

    for n in range(8):
        await desk.create_job(f"user-{n}", "together", {})
    worker = await runtime(desk, registry, concurrency=8)
    await worker.run(until_empty=True)

    assert sum(worker.batch_sizes) == 8
    assert len(worker.batch_sizes) < 8
    assert worker.outcomes == {"completed": 8}


class HeldCommits(DeskTransport):
    """A transport whose completions wait until the test lets them through."""

    def __init__(self, transport: DeskTransport) -> None:
        super().__init__(transport.desk, transport.worker)
        self.entered = asyncio.Event()
        self.proceed = asyncio.Event()

    async def complete(self, completions: Sequence[Completion]) -> list[Job | JobdeskError]:
        self.entered.set()
        await self.proceed.wait()
        return await super().complete(completions)

    async def complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        self.entered.set()
        await self.proceed.wait()
        return await super().complete_and_claim(completions, types, limit)


async def test_nothing_is_acknowledged_before_its_commit(desk: JobDesk) -> None:
    registry = Registry()

    @registry.handler("quick")
    async def quick(ctx: JobContext, payload: Any) -> str:
        return "done"

    job = await desk.create_job("user-1", "quick", {})
    plain = await runtime(desk, registry)
    assert isinstance(plain.transport, DeskTransport)
    transport = HeldCommits(plain.transport)
    worker = WorkerRuntime(registry, transport)
    running = asyncio.create_task(worker.run(until_empty=True))

    await asyncio.wait_for(transport.entered.wait(), 10)
    assert worker.outcomes == {}
    assert [j.id for j in worker.running] == [job.id]  # its slot is held until the commit
    assert (await status_of(desk, job)).status is JobStatus.PROCESSING

    transport.proceed.set()
    await asyncio.wait_for(running, 10)
    assert worker.outcomes == {"completed": 1}
    assert (await status_of(desk, job)).status is JobStatus.COMPLETED


async def test_a_notification_wakes_the_worker_long_before_its_poll_interval(
    desk: JobDesk,
) -> None:
    registry = Registry()

    @registry.handler("ping")
    async def ping(ctx: JobContext, payload: Any) -> str:
        return "pong"

    plain = await runtime(desk, registry)
    assert isinstance(plain.transport, DeskTransport)
    transport = CountingTransport(plain.transport)
    worker = WorkerRuntime(registry, transport, poll_interval=3600)
    running = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: transport.claims == 1)  # the queue was empty: now it sleeps
        job = await desk.create_job("user-1", "ping", {})
        await wait_until(lambda: worker.outcomes["completed"] == 1)
        assert (await status_of(desk, job)).result == "pong"
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)


async def test_a_job_created_through_another_connection_is_picked_up(
    desk: JobDesk, open_desk: OpenDesk
) -> None:
    registry = Registry()

    @registry.handler("ping")
    async def ping(ctx: JobContext, payload: Any) -> str:
        return "pong"

    worker = await runtime(desk, registry, poll_interval=0.2)
    running = asyncio.create_task(worker.run())
    try:
        async with open_desk() as other:  # another connection, as another process would use
            job = await other.create_job("user-1", "ping", {})
        await wait_until(lambda: worker.outcomes["completed"] == 1)
        assert (await status_of(desk, job)).status is JobStatus.COMPLETED
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)


async def test_only_the_registry_s_types_are_claimed(desk: JobDesk) -> None:
    registry = Registry()

    @registry.handler("mine")
    async def mine(ctx: JobContext, payload: Any) -> None:
        return None

    @registry.handler("narrowed.out")
    async def narrowed(ctx: JobContext, payload: Any) -> None:
        return None

    ours = await desk.create_job("user-1", "mine", {})
    skipped = await desk.create_job("user-1", "narrowed.out", {})
    foreign = await desk.create_job("user-1", "somebody.elses", {})
    await (await runtime(desk, registry, types=["mine"])).run(until_empty=True)

    assert (await status_of(desk, ours)).status is JobStatus.COMPLETED
    assert (await status_of(desk, skipped)).status is JobStatus.PENDING
    assert (await status_of(desk, foreign)).status is JobStatus.PENDING


async def test_a_flood_of_other_processes_writes_does_not_flood_the_queue_with_claims(
    desk: JobDesk, open_desk: OpenDesk
) -> None:
    registry = Registry()

    @registry.handler("ping")
    async def ping(ctx: JobContext, payload: Any) -> str:
        return "pong"

    plain = await runtime(desk, registry)
    assert isinstance(plain.transport, DeskTransport)
    transport = CountingTransport(plain.transport)
    worker = WorkerRuntime(registry, transport, poll_interval=3600)
    running = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: transport.claims == 1)
        loop = asyncio.get_running_loop()
        async with open_desk() as other:  # another connection writes, fast, for a while
            writer = await other.verify_worker_token(await other.create_worker_token("busy"))
            await other.create_job("user-1", "elsewhere", {})
            [held] = await other.claim_jobs(writer, types="elsewhere")
            started = loop.time()
            for step in range(200):
                await other.update_job_progress(writer, held.id, step / 2, attempt=held.attempt)
                await asyncio.sleep(0.005)
            elapsed = loop.time() - started
        # SQLite reports those commits as RESYNC (every 10 ms): they wake the worker at
        # most once per RESYNC_SPACING.
        assert transport.claims <= 2 + elapsed / RESYNC_SPACING
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)


async def test_the_worker_token_narrows_the_types_and_none_left_is_refused(
    desk: JobDesk,
) -> None:
    registry = Registry()

    @registry.handler("a")
    async def a(ctx: JobContext, payload: Any) -> None:
        return None

    @registry.handler("b")
    async def b(ctx: JobContext, payload: Any) -> None:
        return None

    only_a = await DeskTransport.connect(
        desk, await desk.create_worker_token("a-only", types=["a"])
    )
    assert WorkerRuntime(registry, only_a).types == {"a"}
    with pytest.raises(InvalidInput) as refused:
        WorkerRuntime(registry, only_a, types=["b"])
    assert refused.value.field == "types"
    assert "may only take a" in refused.value.rule


async def test_a_handler_that_snoozes_runs_again_later_on_the_same_budget(
    desk: JobDesk, clock: ManualClock
) -> None:
    registry = Registry()
    calls: list[int] = []

    @registry.handler("busy_resource")
    async def busy(ctx: JobContext, payload: Any) -> str:
        calls.append(ctx.job.attempt)
        if len(calls) == 1:
            ctx.snooze(30)  # the resource is busy: not a failure
        return "done"

    job = await desk.create_job("user-1", "busy_resource", {})
    first = await runtime(desk, registry)
    await asyncio.wait_for(first.run(until_empty=True), 10)
    assert first.outcomes == {"snoozed": 1}
    snoozed = await desk.get_job_status(job.id, "user-1")
    assert (snoozed.status, snoozed.error) == (JobStatus.PENDING, None)
    assert snoozed.waiting is not None
    assert snoozed.waiting.reason.value == "scheduled"

    clock.advance(31)
    second = await runtime(desk, registry)
    await asyncio.wait_for(second.run(until_empty=True), 10)
    assert second.outcomes == {"completed": 1}
    done = await desk.get_job_status(job.id, "user-1")
    assert (done.status, done.result) == (JobStatus.COMPLETED, "done")
    assert done.attempts_left == done.max_attempts - 1  # only the run that completed counts

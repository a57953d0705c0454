"""The worker's commits of completions: how many travel at once, and the claims they make.

On every store. A transport here holds each commit until the test lets it through,
so that what overlaps is decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

import pytest

from jobdesk import Completion, Job, JobDesk, JobStatus
from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.worker import DeskTransport, JobContext, Registry, WorkerRuntime
from tests.integration.worker_support import runtime, wait_until


class HeldCommits(DeskTransport):
    """A :class:`DeskTransport` whose commits each wait for their own gate, and that
    counts how many were inside at once; ``commits_in_flight`` as the test says."""

    def __init__(self, transport: DeskTransport, *, in_flight: int) -> None:
        super().__init__(transport.desk, transport.worker)
        self.commits_in_flight = in_flight
        #: one gate per commit entered, in order: set it to let that commit through
        self.gates: list[asyncio.Event] = []
        #: the job ids of each commit entered, in order
        self.batches: list[list[str]] = []
        self.inside = 0
        self.most_inside = 0

    async def _held(self, completions: Sequence[Completion]) -> None:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.batches.append([completion.job_id for completion in completions])
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await gate.wait()
        finally:
            self.inside -= 1

    async def complete(self, completions: Sequence[Completion]) -> list[Job | JobdeskError]:
        await self._held(completions)
        return await super().complete(completions)

    async def complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        await self._held(completions)
        return await super().complete_and_claim(completions, types, limit)


async def status_of(desk: JobDesk, job: Job) -> JobStatus:
    return (await desk.get_job_status(job.id, job.user_id)).status


@pytest.mark.parametrize("asked_by", ["transport", "runtime"])
async def test_a_second_batch_travels_while_the_first_is_answered(
    desk: JobDesk, asked_by: str
) -> None:
    """Two commits in flight, as the transport says or as the runtime's
    ``commits_in_flight`` (``jobdesk worker --commits-in-flight``) overrides it."""
    registry = Registry()
    second_may_end = asyncio.Event()

    @registry.handler("pair")
    async def pair(ctx: JobContext, payload: Any) -> str:
        if payload["second"]:
            await second_may_end.wait()
        return "done"

    first = await desk.create_job("user-1", "pair", {"second": False})
    second = await desk.create_job("user-2", "pair", {"second": True})
    plain = await runtime(desk, registry)
    assert isinstance(plain.transport, DeskTransport)
    if asked_by == "transport":
        transport = HeldCommits(plain.transport, in_flight=2)
        worker = WorkerRuntime(registry, transport, concurrency=2, prefetch=0)
    else:
        transport = HeldCommits(plain.transport, in_flight=1)
        worker = WorkerRuntime(registry, transport, concurrency=2, prefetch=0, commits_in_flight=2)
    running = asyncio.create_task(worker.run(until_empty=True))
    try:
        await wait_until(lambda: len(transport.gates) == 1)  # the first job's commit is out
        second_may_end.set()
        await wait_until(lambda: len(transport.gates) == 2)  # the second's goes beside it
        assert transport.batches == [[first.id], [second.id]]
        assert transport.most_inside == 2

        transport.gates[1].set()  # the second is answered first: only it is acknowledged
        await wait_until(lambda: worker.outcomes["completed"] == 1)
        assert await status_of(desk, second) is JobStatus.COMPLETED
        assert await status_of(desk, first) is JobStatus.PROCESSING

        transport.gates[0].set()
        await asyncio.wait_for(running, 15)
    finally:
        for gate in transport.gates:
            gate.set()
        second_may_end.set()
        await asyncio.wait_for(running, 15)
    assert worker.outcomes == {"completed": 2}
    assert await status_of(desk, first) is JobStatus.COMPLETED


@pytest.mark.parametrize("bad", [0, 5, True, "2", 1.5])
async def test_commits_in_flight_is_1_to_4(desk: JobDesk, bad: object) -> None:
    registry = Registry()

    @registry.handler("noop")
    async def noop(ctx: JobContext, payload: Any) -> None:
        return None

    plain = await runtime(desk, registry)
    with pytest.raises(InvalidInput) as refused:
        WorkerRuntime(registry, plain.transport, commits_in_flight=bad)  # type: ignore[arg-type]
    assert refused.value.field == "commits_in_flight"


async def test_one_commit_at_a_time_gathers_what_finishes_meanwhile(desk: JobDesk) -> None:
    registry = Registry()
    others_may_end = asyncio.Event()

    @registry.handler("three")
    async def three(ctx: JobContext, payload: Any) -> str:
        if payload["n"]:
            await others_may_end.wait()
        return "done"

    jobs = [await desk.create_job(f"user-{n}", "three", {"n": n}) for n in range(3)]
    plain = await runtime(desk, registry)
    assert isinstance(plain.transport, DeskTransport)
    transport = HeldCommits(plain.transport, in_flight=1)
    worker = WorkerRuntime(registry, transport, concurrency=3, prefetch=0)
    running = asyncio.create_task(worker.run(until_empty=True))
    try:
        await wait_until(lambda: len(transport.gates) == 1)
        others_may_end.set()
        # Both others finish and queue up behind the commit on its way, not beside it.
        await wait_until(lambda: worker._batcher._queue.qsize() == 2)
        assert len(transport.gates) == 1
        transport.gates[0].set()
        await wait_until(lambda: len(transport.gates) == 2)
        transport.gates[1].set()
        await asyncio.wait_for(running, 15)
    finally:
        for gate in transport.gates:
            gate.set()
        others_may_end.set()
        await asyncio.wait_for(running, 15)
    assert transport.most_inside == 1
    assert transport.batches == [[jobs[0].id], [jobs[1].id, jobs[2].id]]
    assert worker.outcomes == {"completed": 3}


class ClaimLog(DeskTransport):
    """A :class:`DeskTransport` that logs each claim: the loop's (``claim``) or a
    commit's (``cycle``), with how many jobs it took."""

    def __init__(self, transport: DeskTransport) -> None:
        super().__init__(transport.desk, transport.worker)
        self.log: list[tuple[str, int]] = []

    async def claim(self, types: frozenset[str], limit: int) -> list[Job]:
        jobs = await super().claim(types, limit)
        self.log.append(("claim", len(jobs)))
        return jobs

    async def complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        outcomes, jobs = await super().complete_and_claim(completions, types, limit)
        self.log.append(("cycle", len(jobs)))
        return outcomes, jobs


def completed(worker: WorkerRuntime, count: int) -> bool:
    return worker.outcomes["completed"] == count


async def test_an_idle_worker_claims_once_per_job_and_once_with_its_completion(
    desk: JobDesk,
) -> None:
    jobs = 3
    registry = Registry()

    @registry.handler("ping")
    async def ping(ctx: JobContext, payload: Any) -> str:
        return "pong"

    plain = await runtime(desk, registry)
    assert isinstance(plain.transport, DeskTransport)
    transport = ClaimLog(plain.transport)
    worker = WorkerRuntime(registry, transport, poll_interval=3600)
    running = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: transport.log == [("claim", 0)])  # empty: now it sleeps
        for done in range(1, jobs + 1):
            await desk.create_job("user-1", "ping", {})
            await wait_until(functools.partial(completed, worker, done))
    finally:
        worker.stop()
        await asyncio.wait_for(running, 15)
    # Each job: the claim its notification woke, then its completion's claim (empty);
    # no claim of the loop after that one, which could only find the same nothing.
    assert transport.log == [("claim", 0)] + [("claim", 1), ("cycle", 0)] * jobs

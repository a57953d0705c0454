"""A worker on the database fires due schedules and runs the jobs they make; on each store."""

from __future__ import annotations

import asyncio

from jobdesk import JobDesk, JobStatus
from jobdesk.testing import ManualClock
from jobdesk.worker import JobContext, Registry
from tests.integration.worker_support import DEADLINE_SECONDS, runtime, wait_until


async def test_a_worker_on_the_database_fires_schedules_and_runs_their_jobs(
    desk: JobDesk, clock: ManualClock
) -> None:
    registry = Registry()
    ran: list[dict[str, int]] = []

    @registry.handler("report")
    async def report(ctx: JobContext, payload: dict[str, int]) -> int:
        ran.append(payload)
        return payload["n"]

    made = await desk.schedule("often", "* * * * *", "report", {"n": 7}, user_id="alice")
    clock.set(made.next_run_at)
    worker = await runtime(desk, registry, schedule_interval=0.01, poll_interval=0.01, grace=1.0)
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: ran)
    finally:
        worker.stop()
        async with asyncio.timeout(DEADLINE_SECONDS):  # a bound on the stop, not a sleep
            await task
    [job] = (await desk.get_user_jobs("alice")).items
    assert job.status is JobStatus.COMPLETED
    assert job.result == 7
    assert ran == [{"n": 7}]

"""Running caps and type pools hold across OS processes.

Eight processes claim for one user whose ``max_running`` is 3, over jobs half of which
are of a type whose pool is 2; each holds its job briefly and completes it. The
history of the jobs (their events, in the order the store wrote them) must never show
more than 3 of the user's jobs, or 2 of the pooled type, processing at once. The race
is run 20 times on each store.

The events are read in their id order, not by their times: each process stamps its
own clock, and a claim that saw a completion is always written after it, so the id
order is an order the store really went through.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing

import psycopg
import pytest

from jobdesk import JobDesk
from jobdesk.sync import JobDesk as SyncJobDesk

PROCESSES = 8
REPETITIONS = 20
MAX_RUNNING = 3
POOL = 2
#: jobs per repetition, half of them of the pooled type
JOBS = 16
#: how long a claimer holds a job (the work), in seconds
HOLD_SECONDS = 0.02
#: the longest one repetition may take before the test fails (not a sleep)
DEADLINE_SECONDS = 60.0

pytestmark = pytest.mark.slow


def claim_until_drained(url: str, token: str, user_id: str) -> int:
    """One OS process: claim one job at a time, hold it, complete it, until the user
    has nothing pending or processing. Returns how many jobs it completed."""
    completed = 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    with SyncJobDesk.open(url) as desk:
        worker = desk.verify_worker_token(token)
        while time.monotonic() < deadline:
            claimed = desk.claim_jobs(worker, limit=1)
            for job in claimed:
                time.sleep(HOLD_SECONDS)  # the work
                desk.complete_job(worker, job.id, {"by": token[:8]}, attempt=job.attempt)
                completed += 1
            if not claimed:
                usage = desk.get_user_usage(user_id)
                if usage.waiting == 0 and usage.running == 0:
                    return completed
                time.sleep(0.002)  # someone else holds the room: poll again shortly
    raise TimeoutError(f"{user_id}'s jobs were not drained in {DEADLINE_SECONDS} s")


def events_in_write_order(store_url: str) -> list[tuple[str, str, str]]:
    """Every event as ``(job_id, job type, status)``, in the order the store wrote them."""
    query = (
        "SELECT e.job_id, j.type, e.status FROM {events} e JOIN {jobs} j ON j.id = e.job_id "
        "ORDER BY e.id"
    )
    if store_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as connection:
            rows = connection.execute(query.format(events="job_events", jobs="jobs")).fetchall()
    else:
        with psycopg.connect(store_url.split("?", maxsplit=1)[0]) as connection:
            rows = connection.execute(
                query.format(events="jobdesk.job_events", jobs="jobdesk.jobs").encode()
            ).fetchall()
    return [(str(job_id), str(job_type), str(status)) for job_id, job_type, status in rows]


def most_at_once(events: list[tuple[str, str, str]], pooled_type: str) -> tuple[int, int]:
    """The most jobs processing at once, and the most of ``pooled_type``."""
    processing: dict[str, str] = {}
    most_jobs = most_pooled = 0
    for job_id, job_type, status in events:
        if status == "processing":
            processing[job_id] = job_type
        else:
            processing.pop(job_id, None)
        most_jobs = max(most_jobs, len(processing))
        most_pooled = max(most_pooled, Counter(processing.values())[pooled_type])
    return most_jobs, most_pooled


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """Eight OS processes, started once (spawned: nothing inherited from the test)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=context) as executor:
        yield executor


async def test_caps_and_pools_hold_across_processes(
    store_url: str, pool: ProcessPoolExecutor
) -> None:
    loop = asyncio.get_running_loop()
    async with JobDesk.open(store_url) as desk:
        token = await desk.create_worker_token("racers")
        reached: list[tuple[int, int]] = []
        for repetition in range(REPETITIONS):
            user_id, pooled_type = f"racer-{repetition}", f"render-{repetition}"
            await desk.set_user_limits(user_id, max_running=MAX_RUNNING)
            await desk.set_type_limits(pooled_type, max_running=POOL)
            for number in range(JOBS):
                job_type = pooled_type if number % 2 else f"transcode-{repetition}"
                await desk.create_job(user_id, job_type, {"n": number})
            futures = [
                loop.run_in_executor(pool, claim_until_drained, store_url, token, user_id)
                for _ in range(PROCESSES)
            ]
            completed = await asyncio.wait_for(asyncio.gather(*futures), DEADLINE_SECONDS * 2)
            assert sum(completed) == JOBS, f"repetition {repetition}"
            events = [
                event
                for event in events_in_write_order(store_url)
                if event[1] in {pooled_type, f"transcode-{repetition}"}
            ]
            most_jobs, most_pooled = most_at_once(events, pooled_type)
            assert most_jobs <= MAX_RUNNING, f"repetition {repetition}: {most_jobs} running"
            assert most_pooled <= POOL, f"repetition {repetition}: {most_pooled} in the pool"
            reached.append((most_jobs, most_pooled))
    # The race was a race: the caps were reached, not merely never approached.
    assert max(jobs for jobs, _ in reached) == MAX_RUNNING
    assert max(pooled for _, pooled in reached) == POOL

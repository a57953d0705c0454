"""Claims under concurrency: however many claimers race, every job is claimed exactly once.

Bounded by pytest's timeout, never by sleeping.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from contextlib import AsyncExitStack

from jobdesk import Job, JobDesk, JobStatus, Worker
from jobdesk.errors import InvalidTransition
from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk
from tests.integration.support import run_in_threads

JOBS = 120
CLAIMERS = 6


async def make_jobs(desk: JobDesk, count: int) -> set[str]:
    await desk.set_user_limits("alice", max_running=count)
    return {
        (await desk.create_job("alice", "demo", {"n": n}, priority=n % 4)).id for n in range(count)
    }


async def drain(desk: JobDesk, worker: Worker, seed: int) -> list[Job]:
    """Claim in batches of 1-5 until the queue is empty."""
    batch_sizes = random.Random(seed)
    claimed: list[Job] = []
    while batch := await desk.claim_jobs(worker, limit=batch_sizes.randint(1, 5)):
        claimed.extend(batch)
    return claimed


def assert_each_claimed_once(ids: set[str], claims: list[list[Job]], workers: list[str]) -> None:
    counts = Counter(job.id for batch in claims for job in batch)
    assert set(counts) == ids
    assert set(counts.values()) == {1}
    for name, batch in zip(workers, claims, strict=True):
        assert all(job.worker_id == name and job.attempt == 1 for job in batch)


async def test_concurrent_claimers_on_several_desks_claim_each_job_once(
    desk: JobDesk, open_desk: OpenDesk
) -> None:
    ids = await make_jobs(desk, JOBS)
    names = [f"claimer-{n}" for n in range(CLAIMERS)]
    async with AsyncExitStack() as stack:
        desks = [await stack.enter_async_context(open_desk()) for _ in names]
        workers = [
            await claimer.verify_worker_token(await claimer.create_worker_token(name))
            for claimer, name in zip(desks, names, strict=True)
        ]
        claims = await asyncio.gather(
            *(drain(d, w, seed) for seed, (d, w) in enumerate(zip(desks, workers, strict=True)))
        )
    assert_each_claimed_once(ids, list(claims), names)
    page = await desk.get_user_jobs("alice", limit=100, status="processing")
    assert len(page.items) == 100
    assert (await desk.get_user_usage("alice")).running == JOBS


async def test_concurrent_claimers_on_one_desk_claim_each_job_once(desk: JobDesk) -> None:
    ids = await make_jobs(desk, 60)
    names = [f"claimer-{n}" for n in range(CLAIMERS)]
    workers = [await desk.verify_worker_token(await desk.create_worker_token(n)) for n in names]
    claims = await asyncio.gather(*(drain(desk, w, seed) for seed, w in enumerate(workers)))
    assert_each_claimed_once(ids, list(claims), names)


async def test_start_job_races_let_exactly_one_worker_win(
    desk: JobDesk, open_desk: OpenDesk
) -> None:
    job = await desk.create_job("alice", "demo", {})
    async with AsyncExitStack() as stack:
        desks = [await stack.enter_async_context(open_desk()) for _ in range(8)]
        workers = [
            await d.verify_worker_token(await d.create_worker_token(f"racer-{n}"))
            for n, d in enumerate(desks)
        ]
        outcomes = await asyncio.gather(
            *(d.start_job(w, job.id) for d, w in zip(desks, workers, strict=True)),
            return_exceptions=True,
        )
    winners = [outcome for outcome in outcomes if isinstance(outcome, Job)]
    losers = [outcome for outcome in outcomes if not isinstance(outcome, Job)]
    assert len(winners) == 1
    assert all(isinstance(loser, InvalidTransition) for loser in losers), losers
    stored = await desk.get_job_status(job.id, "alice")
    assert (stored.status, stored.attempt, stored.worker_id) == (
        JobStatus.PROCESSING,
        1,
        winners[0].worker_id,
    )


def test_concurrent_claimers_in_threads_claim_each_job_once(
    store_url: str, clock: ManualClock
) -> None:
    threads = 8
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        desk.set_user_limits("alice", max_running=JOBS)
        ids = {desk.create_job("alice", "demo", {"n": n}).id for n in range(JOBS)}
        tokens = [desk.create_worker_token(f"thread-{n}") for n in range(threads)]

    def claim_all(thread_desk: SyncJobDesk, index: int) -> list[Job]:
        worker = thread_desk.verify_worker_token(tokens[index])
        batch_sizes = random.Random(index)
        claimed: list[Job] = []
        while batch := thread_desk.claim_jobs(worker, limit=batch_sizes.randint(1, 5)):
            claimed.extend(batch)
        return claimed

    outcomes = run_in_threads(store_url, clock, threads, claim_all)
    claims = [outcome for outcome in outcomes if isinstance(outcome, list)]
    assert len(claims) == threads, outcomes
    assert_each_claimed_once(ids, claims, [f"thread-{n}" for n in range(threads)])

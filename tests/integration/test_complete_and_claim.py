"""complete_and_claim_jobs: a worker's cycle (complete a batch, claim the next) in one commit.

PostgreSQL runs its completions in SQL of their own (not through ``lifecycle.complete``),
so these tests hold that copy to the rule: the same job, refusals in the same places,
and under concurrency every job finished exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import sqlite3
from collections import Counter

import psycopg
import pytest

from jobdesk import Completion, JobDesk, JobStatus, Limits, Worker
from jobdesk.errors import InvalidInput, InvalidTransition, JobNotFound, LeaseLost
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk
from tests.integration.support import MISSING_ID

LEASE = Limits().lease_seconds


async def test_a_cycle_completes_the_batch_and_claims_the_next_in_queue_order(
    desk: JobDesk, worker: Worker
) -> None:
    jobs = [await desk.create_job("user-1", "render", {"n": n}) for n in range(3)]
    urgent = await desk.create_job("user-1", "render", {"n": 3}, priority=5)
    first = await desk.claim_jobs(worker, limit=2)
    assert [job.id for job in first] == [urgent.id, jobs[0].id]
    outcomes, claimed = await desk.complete_and_claim_jobs(
        worker, [Completion(job.id, job.attempt, {"n": job.input["n"]}) for job in first], limit=5
    )
    assert [getattr(outcome, "status", None) for outcome in outcomes] == [JobStatus.COMPLETED] * 2
    assert [job.id for job in claimed] == [jobs[1].id, jobs[2].id]
    assert all(job.status is JobStatus.PROCESSING for job in claimed)
    for job in first:
        stored = await desk.get_job_status(job.id, "user-1")
        assert (stored.status, stored.result) == (JobStatus.COMPLETED, {"n": job.input["n"]})
        history = [event.status for event in await desk.get_job_history(job.id, "user-1")]
        assert history == [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED]
    for job in claimed:
        history = [event.status for event in await desk.get_job_history(job.id, "user-1")]
        assert history == [JobStatus.PENDING, JobStatus.PROCESSING]


async def test_a_completed_job_is_exactly_what_complete_jobs_makes(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    one = await desk.create_job("user-1", "render", {})
    two = await desk.create_job("user-1", "render", {})
    held = {job.id: job for job in await desk.claim_jobs(worker, limit=2)}
    for job in held.values():
        await desk.update_job_progress(worker, job.id, 40, "halfway", attempt=job.attempt)
    clock.advance(seconds=7)
    [by_batch] = await desk.complete_jobs(worker, [Completion(one.id, 1, [1, "x", None])])
    [by_cycle], _ = await desk.complete_and_claim_jobs(
        worker, [Completion(two.id, 1, [1, "x", None])], limit=1
    )
    assert not isinstance(by_batch, Exception)
    assert not isinstance(by_cycle, Exception)
    same_ids = dataclasses.replace(by_cycle, id=by_batch.id, created_at=by_batch.created_at)
    assert same_ids == by_batch
    assert await desk.get_job_status(two.id, "user-1") == by_cycle


async def test_refusals_come_in_their_places_and_hold_back_nothing(
    desk: JobDesk, worker: Worker, clock: ManualClock
) -> None:
    other = await desk.verify_worker_token(await desk.create_worker_token("worker-2"))
    created = [await desk.create_job("user-1", "render", {"n": n}) for n in range(4)]
    ok, cancelled, expired = await desk.claim_jobs(worker, limit=3)
    [theirs] = await desk.claim_jobs(other)
    await desk.cancel_job(cancelled.id, "user-1")
    clock.advance(seconds=LEASE - 1)
    await desk.heartbeat_job(worker, ok.id, attempt=ok.attempt)
    clock.advance(seconds=2)  # every lease but ok's has run out
    waiting = await desk.create_job("user-2", "render", {})
    outcomes, claimed = await desk.complete_and_claim_jobs(
        worker,
        [
            Completion(ok.id, ok.attempt + 1, "stale"),
            Completion(cancelled.id, cancelled.attempt, "too late"),
            Completion(ok.id, ok.attempt, "done"),
            Completion(expired.id, expired.attempt, "lease ran out"),
            Completion(theirs.id, theirs.attempt, "not mine"),
            Completion(MISSING_ID, 1),
        ],
        limit=3,
    )
    assert isinstance(outcomes[0], LeaseLost)
    assert isinstance(outcomes[1], LeaseLost)
    assert getattr(outcomes[2], "status", None) is JobStatus.COMPLETED
    assert isinstance(outcomes[3], LeaseLost)
    assert isinstance(outcomes[4], LeaseLost)
    assert isinstance(outcomes[5], JobNotFound)
    assert [job.id for job in claimed] == [waiting.id]
    assert (await desk.get_job_status(ok.id, "user-1")).result == "done"
    statuses = [(await desk.get_job_status(job.id, "user-1")).status for job in created]
    assert statuses == [
        JobStatus.COMPLETED,
        JobStatus.CANCELLED,
        JobStatus.PROCESSING,
        JobStatus.PROCESSING,
    ]


async def test_an_attempt_past_any_a_job_can_have_is_refused(desk: JobDesk, worker: Worker) -> None:
    await desk.create_job("user-1", "render", {})
    [job] = await desk.claim_jobs(worker)
    with pytest.raises(InvalidInput, match="attempt"):
        await desk.complete_and_claim_jobs(worker, [Completion(job.id, 2**31)])
    assert (await desk.get_job_status(job.id, "user-1")).status is JobStatus.PROCESSING


async def test_a_job_twice_in_one_batch_completes_once(desk: JobDesk, worker: Worker) -> None:
    await desk.create_job("user-1", "render", {})
    [job] = await desk.claim_jobs(worker)
    outcomes, claimed = await desk.complete_and_claim_jobs(
        worker, [Completion(job.id, job.attempt, "first"), Completion(job.id, job.attempt, "again")]
    )
    assert getattr(outcomes[0], "result", None) == "first"
    assert isinstance(outcomes[1], LeaseLost)
    assert claimed == []
    assert (await desk.get_job_status(job.id, "user-1")).result == "first"


async def test_either_half_may_be_empty_but_not_both(desk: JobDesk, worker: Worker) -> None:
    jobs = [await desk.create_job("user-1", "render", {}) for _ in range(2)]
    outcomes, claimed = await desk.complete_and_claim_jobs(worker, [], limit=1)
    assert (outcomes, [job.id for job in claimed]) == ([], [jobs[0].id])
    outcomes, claimed = await desk.complete_and_claim_jobs(
        worker, [Completion(jobs[0].id, 1)], limit=0
    )
    assert (getattr(outcomes[0], "status", None), claimed) == (JobStatus.COMPLETED, [])
    with pytest.raises(InvalidInput) as nothing:
        await desk.complete_and_claim_jobs(worker, [], limit=0)
    assert nothing.value.field == "limit"
    assert (await desk.get_job_status(jobs[1].id, "user-1")).status is JobStatus.PENDING


@pytest.mark.parametrize(
    ("completions", "limit", "field"),
    [
        ("not a list", 1, "completions"),
        ([Completion(MISSING_ID, 1)] * 1001, 1, "completions"),
        (["not a completion"], 1, "completions"),
        ([Completion("not-an-id", 1)], 1, "job_id"),
        ([Completion(MISSING_ID, 0)], 1, "attempt"),
        ([Completion(MISSING_ID, 1, float("nan"))], 1, "result"),
        ([], -1, "limit"),
        ([], 101, "limit"),
        ([], True, "limit"),
    ],
)
async def test_bad_input_is_refused_by_field_before_anything_is_written(
    desk: JobDesk, worker: Worker, completions: object, limit: object, field: str
) -> None:
    job = await desk.create_job("user-1", "render", {})
    with pytest.raises(InvalidInput) as caught:
        await desk.complete_and_claim_jobs(worker, completions, limit=limit)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert (await desk.get_job_status(job.id, "user-1")).status is JobStatus.PENDING


async def test_a_worker_claims_only_the_types_its_token_allows(desk: JobDesk) -> None:
    narrow = await desk.verify_worker_token(
        await desk.create_worker_token("narrow", types=["render"])
    )
    await desk.create_job("user-1", "transcode", {})
    render = await desk.create_job("user-1", "render", {})
    _, claimed = await desk.complete_and_claim_jobs(narrow, [], limit=5)
    assert [job.id for job in claimed] == [render.id]
    outcomes, claimed = await desk.complete_and_claim_jobs(
        narrow, [Completion(render.id, 1)], types=["transcode"], limit=5
    )
    assert getattr(outcomes[0], "status", None) is JobStatus.COMPLETED
    assert claimed == []


async def test_cycling_workers_and_cancelling_users_finish_every_job_exactly_once(
    open_desk: OpenDesk,
) -> None:
    limits = Limits(max_running_per_user=10_000, max_created_per_day=10_000)
    async with open_desk(limits) as desk:
        jobs = [await desk.create_job(f"user-{n % 5}", "render", {"n": n}) for n in range(300)]
        workers = [
            await desk.verify_worker_token(await desk.create_worker_token(f"cycler-{n}"))
            for n in range(6)
        ]
        finished: Counter[str] = Counter()
        rng = random.Random(7)

        async def cycle(worker: Worker) -> None:
            held: list[Completion] = []
            while True:
                outcomes, claimed = await desk.complete_and_claim_jobs(
                    worker, held, limit=rng.randint(1, 12)
                )
                finished.update(o.id for o in outcomes if not isinstance(o, Exception))
                held = [Completion(job.id, job.attempt, job.input["n"]) for job in claimed]
                if not held:
                    return

        async def cancel() -> None:
            for job in rng.sample(jobs, 60):
                with contextlib.suppress(InvalidTransition):  # it finished first
                    await desk.cancel_job(job.id, job.user_id)
                await asyncio.sleep(0)

        await asyncio.gather(cancel(), *(cycle(worker) for worker in workers))
        assert max(finished.values()) == 1
        for job in jobs:
            stored = await desk.get_job_status(job.id, job.user_id)
            assert stored.status in {JobStatus.COMPLETED, JobStatus.CANCELLED}
            assert (stored.status is JobStatus.COMPLETED) == (job.id in finished)
            if stored.status is JobStatus.COMPLETED:
                assert stored.result == job.input["n"]
            history = [event.status for event in await desk.get_job_history(job.id, job.user_id)]
            assert history.count(JobStatus.COMPLETED) + history.count(JobStatus.CANCELLED) == 1


def _history_order(store_url: str) -> list[tuple[str, str]]:
    """Every history entry as ``(job_id, status)``, in the order the store wrote them."""
    if store_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as db:
            return db.execute("SELECT job_id, status FROM job_events ORDER BY id").fetchall()
    with psycopg.connect(store_url.split("?", 1)[0]) as db:
        rows = db.execute("SELECT job_id, status FROM jobdesk.job_events ORDER BY id").fetchall()
        return [(job_id, status) for job_id, status in rows]


async def test_the_history_writes_an_end_before_the_start_it_made_room_for(
    desk: JobDesk, worker: Worker, store_url: str
) -> None:
    # One running slot: the cycle's claim can start the next job only in the slot the
    # completion frees, and the history (which a replay of running jobs reads in order)
    # must say so: the end first.
    await desk.set_user_limits("user-1", max_running=1)
    first = await desk.create_job("user-1", "render", {})
    second = await desk.create_job("user-1", "render", {})
    [claimed] = await desk.claim_jobs(worker, limit=2)
    assert claimed.id == first.id
    _, [started] = await desk.complete_and_claim_jobs(
        worker, [Completion(first.id, claimed.attempt)], limit=1
    )
    assert started.id == second.id
    order = _history_order(store_url)
    assert order.index((first.id, "completed")) < order.index((second.id, "processing"))

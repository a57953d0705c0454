"""Idempotent creates: one key, one user, one job, counted once."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from jobdesk import Job, JobDesk, JobStatus, Worker
from jobdesk.errors import InvalidInput
from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk
from tests.integration.support import run_in_threads

INPUT = {"episode_ids": ["ep-1", "ep-2"], "options": {"language": "en"}}


async def test_the_same_key_twice_returns_the_same_job_and_counts_once(desk: JobDesk) -> None:
    first = await desk.create_job("alice", "extract", INPUT, "p1", idempotency_key="order-7")
    again = await desk.create_job("alice", "extract", INPUT, "p1", idempotency_key="order-7")
    assert again == first
    assert first.idempotency_key == "order-7"
    usage = await desk.get_user_usage("alice")
    assert (usage.created_today, usage.active) == (1, 1)
    assert [job.id for job in (await desk.get_user_jobs("alice")).items] == [first.id]


async def test_the_same_key_for_another_user_is_independent(desk: JobDesk) -> None:
    alice = await desk.create_job("alice", "extract", INPUT, idempotency_key="order-7")
    bob = await desk.create_job("bob", "extract", INPUT, idempotency_key="order-7")
    assert alice.id != bob.id
    assert (alice.user_id, bob.user_id) == ("alice", "bob")
    assert (await desk.get_user_usage("alice")).created_today == 1
    assert (await desk.get_user_usage("bob")).created_today == 1
    different = await desk.create_job("bob", "render", {"x": 1}, idempotency_key="ORDER-7")
    assert different.id not in {alice.id, bob.id}


@pytest.mark.parametrize(
    ("job_type", "job_input", "project_id"),
    [
        ("render", INPUT, "p1"),
        ("extract", {**INPUT, "options": {"language": "fr"}}, "p1"),
        ("extract", INPUT, "p2"),
        ("extract", INPUT, None),
    ],
)
async def test_the_same_key_with_a_different_request_is_refused(
    desk: JobDesk, job_type: str, job_input: dict[str, object], project_id: str | None
) -> None:
    first = await desk.create_job("alice", "extract", INPUT, "p1", idempotency_key="k")
    with pytest.raises(InvalidInput) as caught:
        await desk.create_job("alice", job_type, job_input, project_id, idempotency_key="k")
    assert caught.value.field == "idempotency_key"
    page = await desk.get_user_jobs("alice")
    assert [job.id for job in page.items] == [first.id]
    assert (await desk.get_user_usage("alice")).created_today == 1


async def test_without_a_key_every_create_is_a_new_job(desk: JobDesk) -> None:
    first = await desk.create_job("alice", "extract", INPUT)
    second = await desk.create_job("alice", "extract", INPUT)
    assert first.id != second.id
    assert (await desk.get_user_usage("alice")).created_today == 2


async def test_a_replay_returns_the_job_even_at_the_waiting_limit(desk: JobDesk) -> None:
    await desk.set_user_limits("alice", max_waiting=1, max_daily=1)
    first = await desk.create_job("alice", "extract", INPUT, idempotency_key="k")
    assert await desk.create_job("alice", "extract", INPUT, idempotency_key="k") == first


async def test_a_replay_returns_the_job_as_it_is_now(desk: JobDesk, worker: Worker) -> None:
    first = await desk.create_job("alice", "extract", INPUT, idempotency_key="k")
    [claimed] = await desk.claim_jobs(worker)
    await desk.complete_job(worker, first.id, {"done": True}, attempt=claimed.attempt)
    again = await desk.create_job("alice", "extract", INPUT, idempotency_key="k")
    assert again.id == first.id
    assert again.status is JobStatus.COMPLETED
    assert (await desk.get_user_usage("alice")).created_today == 1


async def test_concurrent_creates_with_one_key_make_one_job(
    desk: JobDesk, open_desk: OpenDesk
) -> None:
    async with AsyncExitStack() as stack:
        desks = [desk] + [await stack.enter_async_context(open_desk()) for _ in range(4)]
        jobs = await asyncio.gather(
            *(
                desks[n % len(desks)].create_job("alice", "extract", INPUT, idempotency_key="k")
                for n in range(30)
            )
        )
    assert len({job.id for job in jobs}) == 1
    usage = await desk.get_user_usage("alice")
    assert (usage.created_today, usage.active) == (1, 1)


def test_concurrent_creates_with_one_key_from_threads_make_one_job(
    store_url: str, clock: ManualClock
) -> None:
    def create(desk: SyncJobDesk, n: int) -> Job:
        return desk.create_job("alice", "extract", INPUT, idempotency_key="k")

    outcomes = run_in_threads(store_url, clock, 30, create)
    assert all(isinstance(outcome, Job) for outcome in outcomes), outcomes
    assert len({outcome.id for outcome in outcomes if isinstance(outcome, Job)}) == 1
    with SyncJobDesk.open(store_url, clock=clock) as desk:
        assert desk.get_user_usage("alice").created_today == 1
        assert len(desk.get_user_jobs("alice").items) == 1


@pytest.mark.parametrize(
    "changed",
    [{"priority": 5}, {"max_attempts": 1}, {"project_id": "other"}],
    ids=["priority", "max_attempts", "project"],
)
async def test_a_replay_that_asks_for_something_else_is_refused(
    desk: JobDesk, changed: dict[str, Any]
) -> None:
    await desk.create_job("alice", "demo", {"n": 1}, idempotency_key="k-1")
    options: dict[str, Any] = {"project_id": None, "priority": 0, "max_attempts": None} | changed
    with pytest.raises(InvalidInput) as caught:
        await desk.create_job(
            "alice",
            "demo",
            {"n": 1},
            options["project_id"],
            priority=options["priority"],
            max_attempts=options["max_attempts"],
            idempotency_key="k-1",
        )
    assert caught.value.field == "idempotency_key"

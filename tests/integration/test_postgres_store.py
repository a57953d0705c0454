"""PostgreSQL only: what must hold across connections, processes and server restarts.

Every test here runs against a real server (``JOBDESK_TEST_POSTGRES_URL``) on a
fresh database copied from the migrated template.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobdesk import JobDesk, JobSpec, JobStatus, Limits
from jobdesk.changes import RESYNC, JobChange, Subscription
from jobdesk.errors import LeaseLost, RateLimited
from jobdesk.store.postgres import PostgresStore, migrations
from tests.conftest import database_url
from tests.integration.support import function_definition

UNLIMITED = Limits(
    max_running_per_user=100_000, max_waiting_per_user=100_000, max_created_per_day=100_000
)


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """A fresh PostgreSQL database for this test (with a larger pool)."""
    return postgres_url.replace("pool_max=4", "pool_max=8")


async def open_desks(stack: AsyncExitStack, url: str, count: int, limits: Limits) -> list[JobDesk]:
    return [await stack.enter_async_context(JobDesk.open(url, limits=limits)) for _ in range(count)]


# -- claims -----------------------------------------------------------------------------------


@pytest.mark.parametrize("claimers", [1, 2, 16, 64])
@pytest.mark.parametrize("job_count", [1, 37, 500])
async def test_concurrent_claimers_claim_every_job_exactly_once(
    pg_url: str, claimers: int, job_count: int
) -> None:
    async with AsyncExitStack() as stack:
        desks = await open_desks(stack, pg_url, min(claimers, 4), UNLIMITED)
        created = {
            (await desks[0].create_job(f"user-{n % 7}", "render", {"n": n})).id
            for n in range(job_count)
        }
        token = await desks[0].create_worker_token("claimers")
        worker = await desks[0].verify_worker_token(token)
        claimed: list[str] = []

        async def claimer(index: int) -> None:
            desk = desks[index % len(desks)]
            rng = random.Random(index)
            while batch := await desk.claim_jobs(worker, limit=rng.randint(1, 5)):
                claimed.extend(job.id for job in batch)
                assert all(job.status is JobStatus.PROCESSING for job in batch)

        await asyncio.wait_for(asyncio.gather(*(claimer(i) for i in range(claimers))), 60)
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert set(claimed) == created


async def test_a_claim_is_one_statement_that_skips_locked_rows(pg_url: str) -> None:
    async with JobDesk.open(pg_url, limits=UNLIMITED) as desk:
        first = await desk.create_job("user-1", "render", {})
        second = await desk.create_job("user-1", "render", {})
        worker = await desk.verify_worker_token(await desk.create_worker_token("w"))
        # Another transaction holds the oldest job's row: the claim takes the next one
        # instead of waiting for it.
        async with await psycopg.AsyncConnection.connect(
            pg_url.split("?", maxsplit=1)[0]
        ) as holder:
            await holder.execute("SELECT 1 FROM jobdesk.jobs WHERE id = %s FOR UPDATE", (first.id,))
            [claimed] = await asyncio.wait_for(desk.claim_jobs(worker, limit=1), 10)
            assert claimed.id == second.id
            await holder.rollback()
        [then] = await desk.claim_jobs(worker, limit=1)
        assert then.id == first.id


async def test_an_update_decided_from_a_row_that_changed_since_writes_nothing_of_it(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        JobDesk.open(pg_url, limits=UNLIMITED) as desk,
        JobDesk.open(pg_url, limits=UNLIMITED) as other,
    ):
        job = await desk.create_job("user-1", "render", {})
        worker = await desk.verify_worker_token(await desk.create_worker_token("w"))
        [claimed] = await desk.claim_jobs(worker)
        store = desk.store
        assert isinstance(store, PostgresStore)
        write = store._fetch_value

        async def cancel_first(*args: Any) -> Any:
            # The user cancels after the worker's completion was decided, before it is written.
            monkeypatch.setattr(store, "_fetch_value", write)
            await other.cancel_job(job.id, "user-1")
            return await write(*args)

        monkeypatch.setattr(store, "_fetch_value", cancel_first)
        with pytest.raises(LeaseLost):
            await desk.complete_job(worker, job.id, {"done": True}, attempt=claimed.attempt)
        final = await desk.get_job_status(job.id, "user-1")
        history = await desk.get_job_history(job.id, "user-1")
    assert (final.status, final.result) == (JobStatus.CANCELLED, None)
    assert [event.status for event in history] == [
        JobStatus.PENDING,
        JobStatus.PROCESSING,
        JobStatus.CANCELLED,
    ]


# -- limits across processes ------------------------------------------------------------------


def function_text(name: str) -> str:
    """The newest ``CREATE OR REPLACE FUNCTION`` statement of ``name`` in the migrations."""
    return function_definition(name)[1]


def apply_mutant(url: str, text: str) -> None:
    with psycopg.connect(url.split("?", maxsplit=1)[0], autocommit=True) as connection:
        connection.execute(text.encode())


CREATE_USER_LOCK = "FOR UPDATE;"
CREATE_JUDGED = "IF NOT created THEN"


def create_without_the_user_lock(url: str) -> None:
    """The mutation: ``jobdesk.create_job`` reads the user's row without
    locking it, and waits between judging and writing so that racing creates overlap."""
    text = function_text("jobdesk.create_job")
    assert text.count(CREATE_USER_LOCK) == 2, "the user's row lock moved: update this mutation"
    assert text.count(CREATE_JUDGED) == 1, "the judgement moved: update this mutation"
    apply_mutant(
        url,
        text.replace(CREATE_USER_LOCK, ";").replace(
            CREATE_JUDGED, f"PERFORM pg_sleep(0.05);\n    {CREATE_JUDGED}"
        ),
    )


CLAIM_USER_LOCK = "FOR UPDATE OF u SKIP LOCKED"
CLAIM_RECOUNTED = "FOR i IN 1 .. cardinality(w_user) LOOP"


def claim_without_the_user_lock(url: str) -> None:
    """The mutation: ``jobdesk.claim_fair`` walks the users without locking them, and
    waits after counting their running jobs so that racing claims overlap."""
    text = function_text("jobdesk.claim_fair")
    assert text.count(CLAIM_USER_LOCK) == 1, "the walk's user lock moved: update this mutation"
    assert text.count(CLAIM_RECOUNTED) == 1, "the count under the lock moved: update this"
    apply_mutant(
        url,
        text.replace(CLAIM_USER_LOCK, "").replace(
            CLAIM_RECOUNTED, f"PERFORM pg_sleep(0.05);\n            {CLAIM_RECOUNTED}"
        ),
    )


def create_in_process(url: str, limits: Limits, barrier: Any) -> int:
    """One OS process: 25 concurrent creates for one user after all processes are ready."""

    async def main() -> int:
        async with JobDesk.open(url, limits=limits) as desk:
            barrier.wait(timeout=60)
            outcomes = await asyncio.gather(
                *(desk.create_job("racer", "render", {"n": n}) for n in range(25)),
                return_exceptions=True,
            )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, RateLimited):
                raise outcome
        return sum(not isinstance(outcome, BaseException) for outcome in outcomes)

    return asyncio.run(main())


def claim_in_process(url: str, limits: Limits, barrier: Any) -> int:
    """One OS process: 25 concurrent one-job claims after all processes are ready."""

    async def main() -> int:
        async with JobDesk.open(url, limits=limits) as desk:
            token = await desk.create_worker_token(f"racer-{os.getpid()}")
            worker = await desk.verify_worker_token(token)
            barrier.wait(timeout=60)
            batches = await asyncio.gather(*(desk.claim_jobs(worker, limit=1) for _ in range(25)))
        return sum(len(batch) for batch in batches)

    return asyncio.run(main())


async def race_four_processes(url: str, limits: Limits, *, claiming: bool = False) -> int:
    """How many of 4 processes' 25 concurrent creates (or claims) each succeed."""
    context = multiprocessing.get_context("spawn")
    target = claim_in_process if claiming else create_in_process
    with context.Manager() as manager, ProcessPoolExecutor(4, mp_context=context) as pool:
        barrier = manager.Barrier(4)
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(pool, target, url, limits, barrier) for _ in range(4)]
        return sum(await asyncio.wait_for(asyncio.gather(*futures), 120))


@pytest.mark.parametrize("limit_kind", ["waiting", "daily"])
async def test_four_processes_creating_at_once_never_exceed_a_limit(
    pg_url: str, limit_kind: str
) -> None:
    async with JobDesk.open(pg_url, limits=UNLIMITED) as desk:
        for n in range(3):
            await desk.create_job("racer", "render", {"before": n})
        if limit_kind == "waiting":
            await desk.set_user_limits("racer", max_waiting=10)
        else:
            await desk.set_user_limits("racer", max_daily=10)
        created = await race_four_processes(pg_url, UNLIMITED)
        usage = await desk.get_user_usage("racer")
    assert created == 7  # room for exactly 7 of the 100
    assert usage.created_today == 10
    assert (usage.waiting, usage.running) == (10, 0)


async def test_four_processes_claiming_at_once_never_exceed_the_running_cap(
    pg_url: str,
) -> None:
    async with JobDesk.open(pg_url, limits=UNLIMITED) as desk:
        await desk.create_jobs("racer", [JobSpec("render", {"n": n}) for n in range(120)])
        await desk.set_user_limits("racer", max_running=10)
        worker = await desk.verify_worker_token(await desk.create_worker_token("early"))
        assert len(await desk.claim_jobs(worker, limit=3)) == 3
        claimed = await race_four_processes(pg_url, UNLIMITED, claiming=True)
        usage = await desk.get_user_usage("racer")
    assert claimed == 7  # room for exactly 7 of the 100 claims
    assert (usage.running, usage.waiting) == (10, 110)


async def test_the_cross_process_create_test_fails_without_the_per_user_serialisation(
    pg_url: str,
) -> None:
    async with JobDesk.open(pg_url, limits=UNLIMITED) as desk:
        await desk.set_user_limits("racer", max_waiting=10)
        create_without_the_user_lock(pg_url)
        created = await race_four_processes(pg_url, UNLIMITED)
    assert created > 10, "with the row lock removed the waiting limit should be overrun"


async def test_the_cross_process_claim_test_fails_without_the_per_user_serialisation(
    pg_url: str,
) -> None:
    async with JobDesk.open(pg_url, limits=UNLIMITED) as desk:
        await desk.create_jobs("racer", [JobSpec("render", {"n": n}) for n in range(120)])
        await desk.set_user_limits("racer", max_running=10)
        claim_without_the_user_lock(pg_url)
        claimed = await race_four_processes(pg_url, UNLIMITED, claiming=True)
    assert claimed > 10, "with the user lock removed the running cap should be overrun"


# -- notifications ----------------------------------------------------------------------------


async def next_job_change(changes: Subscription, job_id: str) -> JobChange:
    """The next change of ``job_id``, skipping others; fails the test after 10 s."""
    while True:
        change = await asyncio.wait_for(changes.next_change(), 10)
        if isinstance(change, JobChange) and change.job_id == job_id:
            return change


async def wait_for_resync(changes: Subscription) -> None:
    while await asyncio.wait_for(changes.next_change(), 20) is not RESYNC:
        pass


def terminate(url: str, condition: str) -> int:
    database = url.split("?", maxsplit=1)[0].rsplit("/", 1)[1]
    with psycopg.connect(url.split("?", maxsplit=1)[0], autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = %s AND pid <> pg_backend_pid() AND {condition}",
            (database,),
        ).fetchall()
    return len(rows)


@pytest.fixture
async def listening(pg_url: str) -> AsyncIterator[tuple[JobDesk, JobDesk, Subscription]]:
    """A subscribed desk, another desk (another process, as far as NOTIFY goes), the feed."""
    async with (
        JobDesk.open(pg_url, limits=UNLIMITED) as listener,
        JobDesk.open(pg_url, limits=UNLIMITED) as writer,
        listener.subscribe() as changes,
    ):
        yield listener, writer, changes


async def test_changes_from_another_connection_are_delivered(
    listening: tuple[JobDesk, JobDesk, Subscription],
) -> None:
    _, writer, changes = listening
    job = await writer.create_job("user-1", "render", {})
    change = await next_job_change(changes, job.id)
    assert (change.user_id, change.status) == ("user-1", JobStatus.PENDING)
    worker = await writer.verify_worker_token(await writer.create_worker_token("w"))
    [claimed] = await writer.claim_jobs(worker)
    await writer.update_job_progress(worker, job.id, 40, "almost", attempt=claimed.attempt)
    assert (await next_job_change(changes, job.id)).status is JobStatus.PROCESSING
    progressed = await next_job_change(changes, job.id)
    assert (progressed.progress, progressed.progress_message) == (40, "almost")


async def test_listening_resumes_after_its_connection_is_killed(
    pg_url: str, listening: tuple[JobDesk, JobDesk, Subscription]
) -> None:
    _, writer, changes = listening
    await next_job_change(changes, (await writer.create_job("user-1", "render", {})).id)
    assert terminate(pg_url, "query LIKE 'LISTEN %%'") == 1
    await wait_for_resync(changes)
    job = await writer.create_job("user-1", "render", {"after": "kill"})
    assert (await next_job_change(changes, job.id)).status is JobStatus.PENDING


async def test_workers_hear_only_of_new_work_on_a_channel_of_its_own(pg_url: str) -> None:
    async with (
        JobDesk.open(pg_url, limits=UNLIMITED) as listener,
        JobDesk.open(pg_url, limits=UNLIMITED) as writer,
        listener.subscribe(ready_only=True) as ready,
    ):
        job = await writer.create_job("user-1", "render", {})
        change = await next_job_change(ready, job.id)
        assert (change.status, change.type) == (JobStatus.PENDING, "render")
        worker = await writer.verify_worker_token(await writer.create_worker_token("w"))
        [claimed] = await writer.claim_jobs(worker)
        await writer.update_job_progress(worker, job.id, 40, attempt=claimed.attempt)
        await writer.release_job(worker, job.id, attempt=claimed.attempt)  # pending again
        change = await next_job_change(ready, job.id)
        assert (change.status, change.attempt) == (JobStatus.PENDING, 1)
        [claimed] = await writer.claim_jobs(worker)
        await writer.complete_job(worker, job.id, "done", attempt=claimed.attempt)
        assert await ready.next_change(within=0.3) is None  # claims, progress, ends: not here
        assert terminate(pg_url, "query = 'LISTEN jobdesk_ready'") == 1
        await wait_for_resync(ready)
        again = await writer.create_job("user-1", "render", {"after": "kill"})
        assert (await next_job_change(ready, again.id)).status is JobStatus.PENDING


async def test_an_operation_survives_the_loss_of_every_pooled_connection(pg_url: str) -> None:
    async with JobDesk.open(pg_url, limits=UNLIMITED) as desk:
        job = await desk.create_job("user-1", "render", {})
        assert terminate(pg_url, "query NOT LIKE 'LISTEN %%'") >= 1
        assert (await desk.get_job_status(job.id, "user-1")).id == job.id
        assert terminate(pg_url, "query NOT LIKE 'LISTEN %%'") >= 1
        again = await desk.create_job("user-1", "render", {"after": "loss"})
        page = await desk.get_user_jobs("user-1")
    assert [item.id for item in page.items] == [again.id, job.id]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None, reason="needs Debian's pg_ctlcluster")
async def test_listening_and_operations_resume_after_a_server_restart(
    listening: tuple[JobDesk, JobDesk, Subscription],
) -> None:
    _, writer, changes = listening
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    restart = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"
    )
    assert await asyncio.wait_for(restart.wait(), 60) == 0
    await wait_for_resync(changes)
    job = await writer.create_job("user-1", "render", {"after": "restart"})
    assert (await next_job_change(changes, job.id)).status is JobStatus.PENDING


# -- clock, migrations ------------------------------------------------------------------------


async def test_times_come_from_the_database_clock(pg_url: str) -> None:
    async with JobDesk.open(pg_url) as desk:
        before = await desk.store.now()
        job = await desk.create_job("user-1", "render", {})
        after = await desk.store.now()
    assert before <= job.created_at <= after
    assert job.created_at == job.run_at == job.updated_at
    assert abs(job.created_at - datetime.now(UTC)) < timedelta(minutes=5)


def open_and_close(url: str) -> bool:
    async def main() -> None:
        async with JobDesk.open(url):
            pass

    asyncio.run(main())
    return True


async def test_processes_starting_at_once_apply_each_migration_once(
    postgres_server: str,
) -> None:
    database = f"jobdesk_migrate_{os.getpid()}_{random.randrange(10**6)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    url = database_url(postgres_server, database)
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(4, mp_context=context) as pool:
            assert all(pool.map(open_and_close, [url] * 4, timeout=120))
        with psycopg.connect(url) as connection:
            versions = connection.execute("SELECT version FROM jobdesk.migrations").fetchall()
            secrets = connection.execute("SELECT count(*) FROM jobdesk.meta").fetchone()
        assert sorted(versions) == [(version,) for version, _ in migrations()]
        assert secrets == (1,)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

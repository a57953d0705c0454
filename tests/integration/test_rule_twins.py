"""Every rule once: the Python rule and each store's SQL give the same answer, row by row.

The rules live in Python (:mod:`jobdesk.limits`, :mod:`jobdesk.lifecycle`,
:func:`jobdesk.models.next_status`), but for speed some SQL restates them. Each row of
``rule_scenarios.SCENARIOS`` is run through the pure Python rule and through each store
(SQLite and PostgreSQL, by the ``store_url`` fixture), and the Python answer, the
table's expected answer and the store's answer must be the same: the job's new state
(as returned and as stored, and its history entry), the jobs claimed in order, or the
refusal (class, ``limit``, ``allowed``, ``retry_after``, reason) with nothing written.

The SQL twins, each marked ``-- twin of:`` in its ``.sql`` file (checked below):

PostgreSQL (``store/postgres.sql``)
  - ``create_job`` calls ``jobdesk.create_job`` (migration 0004): the daily reset of
    ``limits.usage``, ``Limits.for_user``'s fallback to the defaults, the comparisons of
    ``check_daily`` and ``check_active``, and the job ``lifecycle.create`` makes;
  - ``insert_jobs``: the jobs ``lifecycle.create`` makes (a batch);
  - ``count_active``: ``JobStatus.is_active``;
  - ``ready_jobs`` and ``claim_ctes`` (through ``jobdesk.lock_ready``, migration 0005):
    the ready predicate (``lifecycle.start``: pending, due, a type the worker may take)
    and the claim order (priority, then age); ``claim_ctes`` also restates
    ``lifecycle.start``'s new state; ``claim`` returns the jobs in that order;
  - ``complete_and_claim``: ``lifecycle.hold`` and ``lifecycle.complete``;
  - ``expired_leases``: which jobs ``lifecycle.expire`` requeues;
  - ``prune_finished``: ``JobStatus.is_finished``;
  - ``top_users``: ``JobStatus.is_active`` and the daily reset of ``limits.usage``.

SQLite (``store/sqlite.sql``)
  - ``insert_job``: the job ``lifecycle.create`` makes;
  - ``count_created_today``: the daily reset of ``limits.usage``;
  - ``count_active``: ``JobStatus.is_active``;
  - ``ready_jobs``: the ready predicate and the claim order;
  - ``expired_leases``: which jobs ``lifecycle.expire`` requeues;
  - ``finished_before``: ``JobStatus.is_finished``;
  - ``top_users``: ``JobStatus.is_active`` and the daily reset of ``limits.usage``.

The claim order has no Python function of its own: its rule here is the one the
``Store.ready_jobs`` protocol states, over the jobs ``lifecycle.start`` accepts.
The operator's reports (``stats_counts``, ``stats_workers``, ``throughput``,
``failed_jobs``) read the same status sets but decide nothing; they are not rows here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import re
import sqlite3
from collections.abc import Awaitable
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from jobdesk import Completion, Job, JobDesk, JobSpec, JobStatus, Limits, Worker, lifecycle
from jobdesk.errors import (
    InvalidTransition,
    JobdeskError,
    JobNotFound,
    LeaseLost,
    RateLimited,
)
from jobdesk.limits import check_active, check_daily, usage, usage_day
from jobdesk.models import TRANSITIONS, NewJob, UserUsage
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk
from tests.integration.rule_scenarios import (
    FAILURE,
    RESULT,
    SCENARIOS,
    STATUS_OF,
    USER,
    Actor,
    Backoff,
    Claimed,
    JobState,
    Later,
    Operation,
    Outcome,
    Refusal,
    Scenario,
)

Answer = Job | JobdeskError
Row = dict[str, Any]


async def answer_of(call: Awaitable[Job]) -> Answer:
    """What an operation answers: the job, or the jobdesk error it raised."""
    try:
        return await call
    except JobdeskError as refusal:
        return refusal


def python_answer(rule: Any, *args: Any, **kwargs: Any) -> Answer:
    """What a pure Python rule answers: the job, or the jobdesk error it raised."""
    try:
        answer: Job = rule(*args, **kwargs)
    except JobdeskError as refusal:
        return refusal
    return answer


def describe(error: JobdeskError) -> tuple[object, ...]:
    """What a refusal says, for comparing two of them."""
    if isinstance(error, RateLimited):
        return ("RateLimited", error.limit, error.allowed, error.retry_after)
    if isinstance(error, LeaseLost):
        return ("LeaseLost", error.job_id, error.reason)
    if isinstance(error, InvalidTransition):
        return ("InvalidTransition", error.job_id, error.status, error.action)
    if isinstance(error, JobNotFound):
        return ("JobNotFound", error.job_id)
    return (type(error).__name__, str(error))


# -- setting up a row -------------------------------------------------------------------


async def seed_daily_count(store_url: str, day: date, count: int) -> None:
    """Store the user's daily count as counted on ``day``: no operation can write an
    earlier day's count, so the test writes it."""
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as database, database:
            database.execute(
                "INSERT INTO users (user_id, usage_day, created_on_day) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET "
                "usage_day = excluded.usage_day, created_on_day = excluded.created_on_day",
                (USER, day.isoformat(), count),
            )
        return
    url = urlunsplit(urlsplit(store_url)._replace(query=""))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(
            "INSERT INTO jobdesk.users (user_id, usage_day, created_on_day) VALUES (%s, %s, %s) "
            "ON CONFLICT (user_id) DO UPDATE SET "
            "usage_day = excluded.usage_day, created_on_day = excluded.created_on_day",
            (USER, day, count),
        )


async def worker_named(desk: JobDesk, name: str, types: list[str] | None = None) -> Worker:
    """A verified worker with a new token."""
    return await desk.verify_worker_token(await desk.create_worker_token(name, types=types))


async def set_up_job(  # noqa: PLR0911 - one return per state, as the table lists them
    desk: JobDesk, workers: dict[Actor, Worker], clock: ManualClock, state: JobState
) -> Job:
    """The user's job in ``state``, made by the ordinary operations."""
    worker = workers[Actor.WORKER]
    if state is JobState.SCHEDULED:
        later = clock() + timedelta(hours=1)
        return await desk.create_job(USER, "demo", {"state": state.value}, run_at=later)
    max_attempts = 1 if state is JobState.LAST_ATTEMPT else None
    job = await desk.create_job(USER, "demo", {"state": state.value}, max_attempts=max_attempts)
    if state is JobState.PENDING:
        return job
    if state is JobState.CANCELLED_PENDING:
        return await desk.cancel_job(job.id, USER)
    starter = workers[Actor.OTHER] if state is JobState.PROCESSING_ELSEWHERE else worker
    started = await desk.start_job(starter, job.id)
    if state is JobState.REATTEMPTED:
        await desk.release_job(worker, job.id, attempt=started.attempt)
        return await desk.start_job(worker, job.id)
    if state is JobState.CANCELLED_PROCESSING:
        return await desk.cancel_job(job.id, USER)
    if state is JobState.COMPLETED:
        return await desk.complete_job(worker, job.id, {"earlier": True}, attempt=1)
    if state is JobState.FAILED:
        return await desk.fail_job(worker, job.id, "gave up", retryable=False, attempt=1)
    return started


async def set_up_queue(
    desk: JobDesk, workers: dict[Actor, Worker], clock: ManualClock, scenario: Scenario
) -> dict[str, str]:
    """The queue of a claim row, created in order: the job id of each seed's name."""
    ids: dict[str, str] = {}
    for seed in scenario.queue:
        run_at = clock() + timedelta(seconds=seed.due_in) if seed.due_in else None
        job = await desk.create_job(
            USER, seed.type, {"seed": seed.name}, priority=seed.priority, run_at=run_at
        )
        if seed.then == "start":
            await desk.start_job(workers[Actor.OTHER], job.id)
        elif seed.then == "cancel":
            await desk.cancel_job(job.id, USER)
        ids[seed.name] = job.id
    return ids


async def set_up_user(
    desk: JobDesk,
    workers: dict[Actor, Worker],
    store_url: str,
    clock: ManualClock,
    scenario: Scenario,
) -> Row | None:
    """The user's stored state as the row says; the user's row as Python reads it."""
    user = scenario.user
    for number in range(user.active):
        job = await desk.create_job(USER, "demo", {"already": number})
        if number < user.processing:
            await desk.start_job(workers[Actor.OTHER], job.id)
    if user.fresh and scenario.job is None and not scenario.queue:
        return None
    if user.overrides is not None:
        await desk.set_user_limits(
            USER, max_active=user.overrides.max_active, max_daily=user.overrides.max_daily
        )
    day = clock().date() - timedelta(days=user.counted_days_ago)
    await seed_daily_count(store_url, day, user.created)
    overrides = user.overrides
    return {
        "max_active": None if overrides is None else overrides.max_active,
        "max_daily": None if overrides is None else overrides.max_daily,
        "usage_day": day.isoformat(),
        "created_on_day": user.created,
    }


# -- checking an answer -----------------------------------------------------------------


def resolve(value: object, now: datetime) -> object:
    """A table value with times relative to the clock made absolute."""
    return value.at(now) if isinstance(value, Later) else value


def without_backoff(job: Job, expect: Outcome, now: datetime, limits: Limits) -> Job:
    """``job`` with a jittered ``run_at`` checked against its window and then set aside."""
    backoff = expect.fields.get("run_at")
    if not isinstance(backoff, Backoff):
        return job
    earliest, latest = backoff.window(now, limits)
    assert earliest <= job.run_at <= latest, f"run_at {job.run_at} outside the backoff"
    return dataclasses.replace(job, run_at=now)


def check_expected(answer: Answer, expect: Outcome | Refusal, now: datetime) -> None:
    """The Python answer is the table's answer."""
    if isinstance(expect, Refusal):
        assert isinstance(answer, expect.error), f"expected {expect.error.__name__}: {answer!r}"
        if expect.limit is not None:
            assert isinstance(answer, RateLimited)
            assert (answer.limit, answer.allowed, answer.retry_after) == (
                expect.limit,
                expect.allowed,
                expect.retry_after,
            )
        if expect.reason is not None:
            assert isinstance(answer, LeaseLost)
            assert expect.reason in answer.reason
        return
    assert isinstance(answer, Job), f"expected {expect.status}: {answer!r}"
    assert answer.status is expect.status
    for name, value in expect.fields.items():
        if not isinstance(value, Backoff):
            assert getattr(answer, name) == resolve(value, now), name


def check_same(
    python: Answer, store: Answer, expect: Outcome | Refusal, now: datetime, limits: Limits
) -> None:
    """The store's answer is Python's."""
    if isinstance(python, JobdeskError) or isinstance(store, JobdeskError):
        assert isinstance(python, JobdeskError), f"the store refused, Python did not: {store!r}"
        assert isinstance(store, JobdeskError), f"Python refused, the store did not: {python!r}"
        assert describe(store) == describe(python)
        return
    assert isinstance(expect, Outcome)
    assert without_backoff(store, expect, now, limits) == without_backoff(
        python, expect, now, limits
    )


async def check_history(desk: JobDesk, before: Job, after: Job, length: int) -> None:
    """A status change wrote one history entry as the new state says; else none."""
    history = await desk.get_job_history(before.id, USER)
    if after.status is before.status:
        assert len(history) == length
        return
    assert len(history) == length + 1
    last = history[-1]
    assert (last.status, last.attempt, last.worker_id, last.at) == (
        after.status,
        after.attempt,
        after.worker_id,
        after.updated_at,
    )


# -- running a row ----------------------------------------------------------------------


async def create_in_store(desk: JobDesk, scenario: Scenario) -> list[Job] | JobdeskError:
    """The row's create (one job, or a batch), through the public API."""
    try:
        if scenario.operation is Operation.CREATE:
            return [await desk.create_job(USER, "demo", {"n": 0})]
        specs = [JobSpec("demo", {"n": number}) for number in range(scenario.batch)]
        return await desk.create_jobs(USER, specs)
    except JobdeskError as refusal:
        return refusal


async def run_create(desk: JobDesk, scenario: Scenario, row: Row | None, now: datetime) -> None:
    limits, user, batch = desk.limits, scenario.user, scenario.batch
    before: UserUsage = usage(USER, user.active, row, limits, now)
    expect = scenario.expect
    assert not isinstance(expect, Claimed)

    def admit() -> None:  # the Python rule, as a batch's last job sees it
        check_daily(before.created_today + batch - 1, before.max_daily, now)
        check_active(before.active + batch - 1, before.max_active)

    try:
        admit()
    except RateLimited as refusal:
        python: RateLimited | None = refusal
    else:
        python = None
    store = await create_in_store(desk, scenario)
    if python is not None or isinstance(store, JobdeskError):
        assert python is not None, f"the store refused, Python did not: {store!r}"
        assert isinstance(store, JobdeskError), f"Python refused, the store did not: {python!r}"
        assert describe(store) == describe(python)
        check_expected(python, expect, now)
        assert await desk.get_user_usage(USER) == before, "a refused create wrote its count"
        assert len((await desk.get_user_jobs(USER, limit=100)).items) == user.active
        return
    for number, job in enumerate(store):
        document = {"n": number}
        spec = NewJob(
            id=job.id,
            user_id=USER,
            type="demo",
            input=document,
            input_json=json.dumps(document),
            max_attempts=limits.max_attempts,
        )
        made = lifecycle.create(spec, now)
        assert job == made
        assert await desk.get_job_status(job.id, USER) == made
        check_expected(made, expect, now)
        [event] = await desk.get_job_history(job.id, USER)
        assert (event.status, event.attempt, event.at) == (made.status, 0, made.created_at)
    after_row = {
        **(row or {"max_active": None, "max_daily": None}),
        "usage_day": usage_day(now),
        "created_on_day": before.created_today + batch,
    }
    counted = usage(USER, user.active + batch, after_row, limits, now)
    assert await desk.get_user_usage(USER) == counted
    assert isinstance(expect, Outcome)
    if expect.created_today is not None:
        assert counted.created_today == expect.created_today


async def run_claim(
    desk: JobDesk, scenario: Scenario, worker: Worker, ids: dict[str, str], now: datetime
) -> None:
    expect = scenario.expect
    assert isinstance(expect, Claimed)
    jobs = [await desk.get_job_status(job_id, USER) for job_id in ids.values()]
    asked = None if scenario.types is None else frozenset(scenario.types)
    # The claim order: the jobs lifecycle.start accepts, by priority, then age (the id).
    python: list[Job] = []
    for job in sorted(jobs, key=lambda job: (-job.priority, job.id)):
        if len(python) == scenario.claim_limit or (asked is not None and job.type not in asked):
            continue
        started = python_answer(
            lifecycle.start,
            job,
            now,
            worker=worker,
            lease_seconds=desk.limits.lease_seconds,
        )
        if isinstance(started, Job):
            python.append(started)
    names = {job_id: name for name, job_id in ids.items()}
    assert tuple(names[job.id] for job in python) == expect.names
    by_id = {job.id: job for job in jobs}
    look = await desk.get_pending_jobs(worker, types=scenario.types, limit=scenario.claim_limit)
    assert look == [by_id[job.id] for job in python], "the look at the queue is not the claim"
    if scenario.operation is Operation.CLAIM:
        claimed = await desk.claim_jobs(worker, types=scenario.types, limit=scenario.claim_limit)
    else:
        completed, claimed = await desk.complete_and_claim_jobs(
            worker, [], types=scenario.types, limit=scenario.claim_limit
        )
        assert completed == []
    assert claimed == python
    for job in claimed:
        assert await desk.get_job_status(job.id, USER) == job
        await check_history(desk, by_id[job.id], job, 1)


def python_change(  # noqa: PLR0911 - one return per operation, as the table lists them
    scenario: Scenario, *, before: Job, now: datetime, worker: Worker, attempt: int, limits: Limits
) -> Answer:
    """The pure Python rule's answer to the row's operation on ``before``."""
    operation = scenario.operation
    if operation is Operation.START:
        return python_answer(
            lifecycle.start, before, now, worker=worker, lease_seconds=limits.lease_seconds
        )
    if operation in {Operation.COMPLETE, Operation.CYCLE_COMPLETE}:
        return python_answer(
            lifecycle.complete, before, now, worker=worker, attempt=attempt, result=RESULT
        )
    if operation in {Operation.FAIL, Operation.FAIL_FINAL}:
        return python_answer(
            lifecycle.fail,
            before,
            now,
            worker=worker,
            attempt=attempt,
            error=FAILURE,
            retryable=operation is Operation.FAIL,
            limits=limits,
        )
    if operation is Operation.RELEASE:
        return python_answer(lifecycle.release, before, now, worker=worker, attempt=attempt)
    if operation is Operation.EXPIRE:
        return python_answer(lifecycle.expire, before, now, limits=limits)
    if operation is Operation.CANCEL:
        return python_answer(lifecycle.cancel, before, now)
    assert operation is Operation.RETRY

    def retry() -> Job:
        revived = lifecycle.retry(before, now)
        max_active, _ = limits.for_user(scenario.user.overrides)
        check_active(scenario.user.active, max_active)
        return revived

    return python_answer(retry)


async def store_change(  # noqa: PLR0911 - one return per operation, as the table lists them
    desk: JobDesk, scenario: Scenario, before: Job, worker: Worker, attempt: int
) -> Answer:
    """The store's answer to the row's operation on ``before``, through the public API."""
    job_id = before.id
    match scenario.operation:
        case Operation.START:
            return await answer_of(desk.start_job(worker, job_id))
        case Operation.COMPLETE:
            return await answer_of(desk.complete_job(worker, job_id, RESULT, attempt=attempt))
        case Operation.CYCLE_COMPLETE:
            [outcome], claimed = await desk.complete_and_claim_jobs(
                worker, [Completion(job_id, attempt, RESULT)], limit=0
            )
            assert claimed == []
            return outcome
        case Operation.FAIL | Operation.FAIL_FINAL:
            retryable = scenario.operation is Operation.FAIL
            call = desk.fail_job(worker, job_id, FAILURE, retryable=retryable, attempt=attempt)
            return await answer_of(call)
        case Operation.RELEASE:
            return await answer_of(desk.release_job(worker, job_id, attempt=attempt))
        case Operation.EXPIRE:
            requeued = await desk.requeue_expired()
            after = await desk.get_job_status(job_id, USER)
            assert requeued == (0 if after == before else 1)
            return after
        case Operation.CANCEL:
            return await answer_of(desk.cancel_job(job_id, USER))
        case Operation.RETRY:
            return await answer_of(desk.retry_job(job_id, USER))
    raise AssertionError(f"not a job operation: {scenario.operation}")  # pragma: no cover


async def run_change(
    desk: JobDesk, scenario: Scenario, job: Job, worker: Worker, now: datetime
) -> None:
    before = await desk.get_job_status(job.id, USER)
    length = len(await desk.get_job_history(job.id, USER))
    attempt = before.attempt - 1 if scenario.stale_attempt else before.attempt
    expect = scenario.expect
    assert not isinstance(expect, Claimed)
    python = python_change(
        scenario, before=before, now=now, worker=worker, attempt=attempt, limits=desk.limits
    )
    check_expected(python, expect, now)
    store = await store_change(desk, scenario, before, worker, attempt)
    check_same(python, store, expect, now, desk.limits)
    stored = await desk.get_job_status(job.id, USER)
    if isinstance(python, JobdeskError):
        assert stored == before, "a refused operation wrote the job"
        await check_history(desk, before, before, length)
        return
    assert isinstance(expect, Outcome)
    assert without_backoff(stored, expect, now, desk.limits) == without_backoff(
        python, expect, now, desk.limits
    )
    await check_history(desk, before, stored, length)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
async def test_python_and_the_store_give_the_table_s_answer(
    scenario: Scenario, open_desk: OpenDesk, clock: ManualClock, store_url: str
) -> None:
    clock.set(scenario.clock)
    async with open_desk(scenario.limits) as desk:
        workers = {
            Actor.WORKER: await worker_named(desk, Actor.WORKER.value),
            Actor.OTHER: await worker_named(desk, Actor.OTHER.value),
            Actor.RENDERER: await worker_named(desk, Actor.RENDERER.value, ["render"]),
        }
        job = None if scenario.job is None else await set_up_job(desk, workers, clock, scenario.job)
        ids = await set_up_queue(desk, workers, clock, scenario)
        row = await set_up_user(desk, workers, store_url, clock, scenario)
        if scenario.actor is Actor.WORKER_RENDER_ONLY:
            # The same worker name, its token now re-issued for another type only.
            await desk.revoke_worker_token(Actor.WORKER.value)
            workers[Actor.WORKER_RENDER_ONLY] = await worker_named(
                desk, Actor.WORKER.value, ["render"]
            )
        now = clock.advance(seconds=scenario.after)
        worker = workers[scenario.actor]
        if scenario.operation in {Operation.CREATE, Operation.CREATE_BATCH}:
            await run_create(desk, scenario, row, now)
        elif scenario.operation in {Operation.CLAIM, Operation.CYCLE_CLAIM}:
            await run_claim(desk, scenario, worker, ids, now)
        else:
            assert job is not None
            await run_change(desk, scenario, job, worker, now)


# -- the table and the SQL files hold together --------------------------------------------

#: the queries that restate a Python rule, by file: each must say so in a twin line
TWINS = {
    "postgres.sql": {
        "claim",
        "claim_ctes",
        "complete_and_claim",
        "count_active",
        "create_job",
        "expired_leases",
        "insert_jobs",
        "prune_finished",
        "ready_jobs",
        "top_users",
    },
    "sqlite.sql": {
        "count_active",
        "count_created_today",
        "expired_leases",
        "finished_before",
        "insert_job",
        "ready_jobs",
        "top_users",
    },
}
_QUERY_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_TWIN_LINE = "-- twin of:"


def twin_lines(filename: str) -> dict[str, list[str]]:
    """The Python originals each query of ``filename`` names in its twin lines."""
    text = resources.files("jobdesk.store").joinpath(filename).read_text(encoding="utf-8")
    parts = _QUERY_HEADER.split(text)
    found: dict[str, list[str]] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        originals = [
            original.strip()
            for line in body.splitlines()
            if line.startswith(_TWIN_LINE)
            for original in line.removeprefix(_TWIN_LINE).split(",")
        ]
        if originals:
            found[name] = originals
    return found


def python_object(dotted: str) -> object:
    """The module, class, function or property a dotted name stands for."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise LookupError(dotted)


@pytest.mark.parametrize("filename", sorted(TWINS))
def test_every_sql_twin_names_python_originals_that_exist(filename: str) -> None:
    found = twin_lines(filename)
    assert set(found) == TWINS[filename]
    for query, originals in found.items():
        for original in originals:
            assert original.startswith("jobdesk."), f"{filename} {query}: {original}"
            python_object(original)


def test_the_table_covers_every_transition_limit_and_refusal() -> None:
    moves: set[tuple[JobStatus, JobStatus]] = set()
    for scenario in SCENARIOS:
        expect = scenario.expect
        if isinstance(expect, Claimed) and expect.names:
            moves.add((JobStatus.PENDING, JobStatus.PROCESSING))
        if isinstance(expect, Outcome) and scenario.job is not None:
            moves.add((STATUS_OF[scenario.job], expect.status))
    # Each (from, to) of the table is one action: the table has no two ways between two statuses.
    assert {(source, target) for (source, _), target in TRANSITIONS.items()} <= moves
    assert {scenario.operation for scenario in SCENARIOS} == set(Operation)
    refusals = [scenario for scenario in SCENARIOS if isinstance(scenario.expect, Refusal)]
    limited = {
        (scenario.operation, scenario.expect.limit)
        for scenario in refusals
        if isinstance(scenario.expect, Refusal)
    }
    for operation in (Operation.CREATE, Operation.CREATE_BATCH):
        assert {(operation, "daily"), (operation, "active")} <= limited
    assert (Operation.RETRY, "active") in limited
    overridden = [scenario.user.overrides for scenario in SCENARIOS if scenario.user.overrides]
    assert any(overrides.max_daily is not None for overrides in overridden)
    assert any(overrides.max_active is not None for overrides in overridden)
    assert any(overrides.max_daily is None for overrides in overridden), "the daily fallback"
    assert any(overrides.max_active is None for overrides in overridden), "the active fallback"
    assert any(
        scenario.user.counted_days_ago and isinstance(scenario.expect, Outcome)
        for scenario in SCENARIOS
    ), "the daily count's reset"
    hold_reasons = [
        "not held by this worker",
        "is not the job's current attempt",
        "was cancelled",
        "the job is completed",
        "the lease expired",
    ]
    for operation in (Operation.COMPLETE, Operation.CYCLE_COMPLETE):
        given = [
            scenario.expect
            for scenario in refusals
            if scenario.operation is operation and isinstance(scenario.expect, Refusal)
        ]
        for reason in hold_reasons:
            assert any(refusal.reason and reason in refusal.reason for refusal in given), reason
        assert any(refusal.error is JobNotFound for refusal in given), "the token's types"
    assert any(scenario.expect == Refusal(InvalidTransition) for scenario in refusals)

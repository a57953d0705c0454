"""Every rule once: the Python rule and each store's SQL give the same answer, row by row.

The rules live in Python (:mod:`jobdesk.limits`, :mod:`jobdesk.lifecycle`,
:func:`jobdesk.models.next_status`), but for speed some SQL restates them. Each row of
``rule_scenarios.SCENARIOS`` is run through the pure Python rule and through each store
(SQLite and PostgreSQL, by the ``store_url`` fixture), and the Python answer, the
table's expected answer and the store's answer must be the same: the job's new state
(as returned and as stored, and its history entry), the jobs claimed in order, or the
refusal (class, ``limit``, ``allowed``, ``retry_after``, reason) with nothing written.

The SQL twins, each marked ``-- twin of:`` in its ``.sql`` file (checked below):

PostgreSQL (``store/postgres.sql``, and migration 0007's functions)
  - ``create_job`` calls ``jobdesk.create_job`` (migration 0007): the daily reset of
    ``limits.created_today``, ``Limits.for_user``'s fallback to the defaults, the
    comparisons of ``check_daily`` then ``check_waiting``, the arrival rule
    (``scheduling.vtime_on_arrival``, through ``jobdesk.arrival_vtime``) and the job
    ``lifecycle.create`` makes; ``insert_jobs``, ``count_created`` and ``write_jobs``:
    a batch's jobs, and the arrival rule of every move into ``pending``;
  - ``claim`` calls ``jobdesk.claim_fair`` (migration 0007): the walk
    (``scheduling.candidates``), the plan (``scheduling.plan``: fair by weight across
    users, priority then age within one, running caps, pools, rates) and
    ``lifecycle.start``'s new state; ``complete_and_claim`` also does
    ``lifecycle.hold`` and ``lifecycle.complete``; ``walk`` and ``wait_facts``: a
    user's own order (``scheduling.user_order_key``);
  - ``expired_leases``: which jobs ``lifecycle.expire`` requeues;
  - ``prune_finished``: ``JobStatus.is_finished``;
  - ``delete_expired`` and ``count_expired`` (``postgres_retention.sql``):
    ``retention.is_expired``, over ``RetentionPolicy.cutoffs``' rows; its case table is
    ``test_retention.py``'s;
  - ``top_users``: ``JobStatus.is_active`` and ``limits.usage``.

SQLite (``store/sqlite.sql``: the store runs the Python rule itself, these read for it)
  - ``arrival_floor``: the floor of ``scheduling.vtime_on_arrival``;
  - ``insert_job``: the job ``lifecycle.create`` makes;
  - ``user_queue`` and ``count_ahead``: a user's own order and the jobs
    ``lifecycle.start`` accepts;
  - ``expired_leases``: which jobs ``lifecycle.expire`` requeues;
  - ``finished_before``: ``JobStatus.is_finished``;
  - ``expired_jobs`` (``sqlite_retention.sql``): ``retention.is_expired``;
  - ``top_users``: ``JobStatus.is_active`` and ``limits.usage``.

The claim order's Python side here is ``scheduling.candidates`` then
``scheduling.plan`` over the users' clocks as the rule makes them while the row is
set up (the arrival rule, ``1 / weight`` per start): the stores keep those clocks
hidden, so the claims they make are the only way to see them.
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

from jobdesk import (
    Completion,
    Job,
    JobDesk,
    JobSpec,
    JobStatus,
    Limits,
    Worker,
    lifecycle,
    scheduling,
)
from jobdesk.errors import (
    InvalidTransition,
    JobdeskError,
    JobNotFound,
    LeaseLost,
    RateLimited,
)
from jobdesk.limits import check_daily, check_waiting, usage, usage_day
from jobdesk.models import TRANSITIONS, Action, NewJob, UserLimits, UserUsage
from jobdesk.scheduling import QueuedUser, TypeGate
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk
from tests.integration.rule_scenarios import (
    FAILURE,
    RESULT,
    SCENARIOS,
    SNOOZE_DELAY,
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
from tests.integration.support import function_definition

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
    desk: JobDesk,
    workers: dict[Actor, Worker],
    clock: ManualClock,
    state: JobState,
    job_type: str = "demo",
) -> Job:
    """The user's job in ``state``, made by the ordinary operations."""
    worker = workers[Actor.WORKER]
    if state is JobState.SCHEDULED:
        later = clock() + timedelta(hours=1)
        return await desk.create_job(USER, job_type, {"state": state.value}, run_at=later)
    max_attempts = 1 if state is JobState.LAST_ATTEMPT else None
    job = await desk.create_job(USER, job_type, {"state": state.value}, max_attempts=max_attempts)
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
            seed.user, seed.type, {"seed": seed.name}, priority=seed.priority, run_at=run_at
        )
        if seed.then == "start":
            await desk.start_job(workers[Actor.OTHER], job.id)
        elif seed.then == "cancel":
            await desk.cancel_job(job.id, seed.user)
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
    for number in range(user.processing + user.waiting):
        job_type = user.processing_type if number < user.processing else "demo"
        job = await desk.create_job(USER, job_type, {"already": number})
        if number < user.processing:
            await desk.start_job(workers[Actor.OTHER], job.id)
    if user.fresh and scenario.job is None and not scenario.queue:
        return None
    overrides = user.overrides or UserLimits()
    if user.overrides is not None:
        await desk.set_user_limits(
            USER,
            max_running=overrides.max_running,
            max_waiting=overrides.max_waiting,
            max_daily=overrides.max_daily,
            weight=overrides.weight,
        )
    day = clock().date() - timedelta(days=user.counted_days_ago)
    await seed_daily_count(store_url, day, user.created)
    pending = user.waiting + sum(seed.user == USER and seed.then is None for seed in scenario.queue)
    if scenario.job is not None and STATUS_OF[scenario.job] is JobStatus.PENDING:
        pending += 1
    return {
        "max_running": overrides.max_running,
        "max_waiting": overrides.max_waiting,
        "max_daily": overrides.max_daily,
        "weight": overrides.weight,
        "usage_day": day.isoformat(),
        "created_on_day": user.created,
        "waiting": pending,
    }


def python_clocks(scenario: Scenario) -> tuple[dict[str, float], dict[str, datetime | None]]:
    """The users' clocks and the rated types' next starts as the rule makes them while
    the row is set up (its queue, then the user's other jobs), all at the row's clock."""
    weights = {user_id: overrides.weight or 1.0 for user_id, overrides in scenario.others}
    vtime: dict[str, float] = {}
    waiting: dict[str, int] = {}
    next_start: dict[str, datetime | None] = {}
    rates = {limits.type: limits.rate for limits in scenario.type_limits if limits.rate}

    def arrive(user_id: str) -> None:
        if not waiting.get(user_id):
            floors = [
                vtime[other] for other, count in waiting.items() if count and other != user_id
            ]
            mine = vtime.get(user_id, 0.0)
            vtime[user_id] = scheduling.vtime_on_arrival(mine, min(floors) if floors else None)
        waiting[user_id] = waiting.get(user_id, 0) + 1

    def start(user_id: str, job_type: str) -> None:
        waiting[user_id] -= 1
        vtime[user_id] = scheduling.vtime_after_start(vtime[user_id], weights.get(user_id, 1.0))
        rate = rates.get(job_type)
        if rate is not None:
            next_start[job_type] = rate.next_start_after(next_start.get(job_type), scenario.clock)

    for seed in scenario.queue:
        arrive(seed.user)
        if seed.then == "start":
            start(seed.user, seed.type)
        elif seed.then == "cancel":
            waiting[seed.user] -= 1
    user = scenario.user
    for number in range(user.processing + user.waiting):
        arrive(USER)
        if number < user.processing:
            start(USER, user.processing_type)
    return vtime, next_start


def python_gates(
    scenario: Scenario, jobs: list[Job], next_start: dict[str, datetime | None]
) -> dict[str, TypeGate]:
    """The types' gates before the operation: their running jobs and next starts."""
    gates: dict[str, TypeGate] = {}
    for limits in scenario.type_limits:
        running = sum(
            job.type == limits.type and job.status is JobStatus.PROCESSING for job in jobs
        )
        if scenario.user.processing_type == limits.type:
            running += scenario.user.processing
        gates[limits.type] = TypeGate(limits, running, next_start.get(limits.type))
    return gates


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
            said = answer.reason if isinstance(answer, LeaseLost) else str(answer)
            assert expect.reason in said, said
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
    history = await desk.get_job_history(before.id, before.user_id)
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
    before: UserUsage = usage(USER, user.processing, row, limits, now)
    expect = scenario.expect
    assert not isinstance(expect, Claimed)

    def admit() -> None:  # the Python rule: the day, then the waiting jobs
        check_daily(before.created_today, before.max_daily, now, count=batch)
        check_waiting(before.waiting, before.max_waiting, count=batch)

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
        held = user.waiting + user.processing
        assert len((await desk.get_user_jobs(USER, limit=100)).items) == held
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
        **(row or {"max_running": None, "max_waiting": None, "max_daily": None, "weight": None}),
        "usage_day": usage_day(now),
        "created_on_day": before.created_today + batch,
        "waiting": before.waiting + batch,
    }
    counted = usage(USER, user.processing, after_row, limits, now)
    assert await desk.get_user_usage(USER) == counted
    assert isinstance(expect, Outcome)
    if expect.created_today is not None:
        assert counted.created_today == expect.created_today
    if expect.waiting is not None:
        assert counted.waiting == expect.waiting


async def run_claim(
    desk: JobDesk, scenario: Scenario, worker: Worker, ids: dict[str, str], now: datetime
) -> None:
    expect = scenario.expect
    assert isinstance(expect, Claimed)
    owners = {seed.name: seed.user for seed in scenario.queue}
    jobs = [await desk.get_job_status(job_id, owners[name]) for name, job_id in ids.items()]
    asked = None if scenario.types is None else frozenset(scenario.types)
    # The claim order: the walk (waiting users by their clocks), then the plan.
    vtime, next_start = python_clocks(scenario)
    overrides = dict(scenario.others)
    if scenario.user.overrides is not None:
        overrides[USER] = scenario.user.overrides
    walk: list[QueuedUser] = []
    for user_id in sorted({job.user_id for job in jobs}):
        effective = desk.limits.for_user(overrides.get(user_id))
        own = [job for job in jobs if job.user_id == user_id]
        pending = [job for job in own if job.status is JobStatus.PENDING]
        if not pending:
            continue
        running = sum(job.status is JobStatus.PROCESSING for job in own)
        if user_id == USER:
            running += scenario.user.processing
        walk.append(
            QueuedUser(
                user_id,
                vtime[user_id],
                effective.weight,
                running,
                effective.max_running,
                sorted(pending, key=scheduling.user_order_key),
            )
        )
    walk.sort(key=lambda user: (user.vtime, user.user_id))
    gates = python_gates(scenario, jobs, next_start)

    def allowed(job: Job) -> bool:
        return worker.may_handle(job.type) and (asked is None or job.type in asked)

    limit = scenario.claim_limit
    chosen = scheduling.candidates(walk, limit=limit, now=now, allowed=allowed, gates=gates)
    planned = scheduling.plan(chosen, limit=limit, now=now, allowed=allowed, gates=gates)
    lease = desk.limits.lease_seconds
    python = [lifecycle.start(job, now, worker=worker, lease_seconds=lease) for job in planned]
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
    started = {job.id for job in claimed}
    for job in claimed:
        assert await desk.get_job_status(job.id, job.user_id) == job
        await check_history(desk, by_id[job.id], job, 1)
    for user_id in {job.user_id for job in jobs}:
        left = sum(
            job.user_id == user_id and job.status is JobStatus.PENDING and job.id not in started
            for job in jobs
        )
        if user_id == USER:
            left += scenario.user.waiting
        assert (await desk.get_user_usage(user_id)).waiting == left, user_id


def python_start(
    scenario: Scenario, *, before: Job, now: datetime, worker: Worker, limits: Limits
) -> Job:
    """A start by id: ``lifecycle.start``, then the user's running cap and the type's gate."""
    started = lifecycle.start(before, now, worker=worker, lease_seconds=limits.lease_seconds)
    effective = limits.for_user(scenario.user.overrides)
    running = scenario.user.processing
    if running >= effective.max_running:
        reason = f"{USER} already has {running} jobs running (max_running {effective.max_running})"
        raise InvalidTransition(before.id, "pending", Action.START.value, reason)
    _, next_start = python_clocks(scenario)
    gate = python_gates(scenario, [], next_start).get(before.type)
    if gate is not None and not gate.open(now):
        pool = gate.limits.max_running
        if pool is not None and gate.running >= pool:
            raise InvalidTransition(
                before.id, "pending", Action.START.value, "the type's pool is full"
            )
        assert gate.next_start_at is not None
        reason = f"the type's rate allows the next start at {gate.next_start_at.isoformat()}"
        raise InvalidTransition(before.id, "pending", Action.START.value, reason)
    return started


def python_change(  # noqa: PLR0911 - one return per operation, as the table lists them
    scenario: Scenario,
    *,
    before: Job,
    now: datetime,
    worker: Worker,
    attempt: int,
    limits: Limits,
    usage_before: UserUsage,
) -> Answer:
    """The pure Python rule's answer to the row's operation on ``before``."""
    operation = scenario.operation
    if operation is Operation.START:
        return python_answer(
            python_start, scenario, before=before, now=now, worker=worker, limits=limits
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
    if operation is Operation.SNOOZE:
        return python_answer(
            lifecycle.snooze, before, now, worker=worker, attempt=attempt, delay=SNOOZE_DELAY
        )
    if operation is Operation.EXPIRE:
        return python_answer(lifecycle.expire, before, now, limits=limits)
    if operation is Operation.CANCEL:
        return python_answer(lifecycle.cancel, before, now)
    assert operation is Operation.RETRY

    def retry() -> Job:  # admitted as a creation: the day, then the waiting jobs
        revived = lifecycle.retry(before, now)
        check_daily(usage_before.created_today, usage_before.max_daily, now)
        check_waiting(usage_before.waiting, usage_before.max_waiting)
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
        case Operation.SNOOZE:
            call = desk.snooze_job(worker, job_id, SNOOZE_DELAY, attempt=attempt)
            return await answer_of(call)
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
    usage_before = await desk.get_user_usage(USER)
    python = python_change(
        scenario,
        before=before,
        now=now,
        worker=worker,
        attempt=attempt,
        limits=desk.limits,
        usage_before=usage_before,
    )
    check_expected(python, expect, now)
    store = await store_change(desk, scenario, before, worker, attempt)
    check_same(python, store, expect, now, desk.limits)
    stored = await desk.get_job_status(job.id, USER)
    usage_after = await desk.get_user_usage(USER)
    if isinstance(python, JobdeskError):
        assert stored == before, "a refused operation wrote the job"
        assert usage_after == usage_before, "a refused operation wrote the user's counts"
        await check_history(desk, before, before, length)
        return
    assert isinstance(expect, Outcome)
    assert without_backoff(stored, expect, now, desk.limits) == without_backoff(
        python, expect, now, desk.limits
    )
    await check_history(desk, before, stored, length)
    # The waiting and running counts follow the job into and out of each status; a
    # retry is also counted as a creation today.
    pending, processing = JobStatus.PENDING, JobStatus.PROCESSING
    moved = {
        status: (python.status is status) - (before.status is status)
        for status in (pending, processing)
    }
    revived = scenario.operation is Operation.RETRY
    assert (usage_after.waiting, usage_after.running, usage_after.created_today) == (
        usage_before.waiting + moved[pending],
        usage_before.running + moved[processing],
        usage_before.created_today + revived,
    )
    if expect.waiting is not None:
        assert usage_after.waiting == expect.waiting
    if expect.created_today is not None:
        assert usage_after.created_today == expect.created_today


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
async def test_python_and_the_store_give_the_table_s_answer(
    scenario: Scenario, open_desk: OpenDesk, clock: ManualClock, store_url: str
) -> None:
    clock.set(scenario.clock)
    async with open_desk(scenario.limits) as desk:
        for limits in scenario.type_limits:
            rate = None if limits.rate is None else str(limits.rate)
            await desk.set_type_limits(limits.type, max_running=limits.max_running, rate=rate)
        for user_id, overrides in scenario.others:
            await desk.set_user_limits(
                user_id,
                max_running=overrides.max_running,
                max_waiting=overrides.max_waiting,
                max_daily=overrides.max_daily,
                weight=overrides.weight,
            )
        workers = {
            Actor.WORKER: await worker_named(desk, Actor.WORKER.value),
            Actor.OTHER: await worker_named(desk, Actor.OTHER.value),
            Actor.RENDERER: await worker_named(desk, Actor.RENDERER.value, ["render"]),
        }
        job = (
            None
            if scenario.job is None
            else await set_up_job(desk, workers, clock, scenario.job, scenario.job_type)
        )
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
        "complete_and_claim",
        "count_created",
        "create_job",
        "expired_leases",
        "insert_jobs",
        "prune_finished",
        "top_users",
        "wait_facts",
        "walk",
        "write_jobs",
    },
    "postgres_retention.sql": {"count_expired", "delete_expired"},
    "postgres_schedules.sql": {"any_due", "due_schedules"},
    "sqlite_retention.sql": {"expired_jobs"},
    "sqlite_schedules.sql": {"any_due", "due_schedules"},
    "sqlite.sql": {
        "arrival_floor",
        "count_ahead",
        "expired_leases",
        "finished_before",
        "insert_job",
        "top_users",
        "user_queue",
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


#: the PostgreSQL functions that restate a rule, in their header comments (their newest
#: definition in the migrations)
MIGRATION_TWINS = ("jobdesk.arrival_vtime", "jobdesk.create_job", "jobdesk.claim_fair")
_MIGRATION_TWIN = re.compile(r"twin of\s+(?:--\s+)?(jobdesk\.\w+\.[\w.]*\w)")


def test_the_fair_scheduling_functions_name_python_originals_that_exist() -> None:
    for function in MIGRATION_TWINS:
        header, body = function_definition(function)
        named = _MIGRATION_TWIN.findall(header + body)
        assert named, f"{function} names no Python original in a twin line"
        for original in named:
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
    for operation in (Operation.CREATE, Operation.CREATE_BATCH, Operation.RETRY):
        assert {(operation, "daily"), (operation, "waiting")} <= limited, operation
    overridden = [scenario.user.overrides for scenario in SCENARIOS if scenario.user.overrides]
    assert any(overrides.max_daily is not None for overrides in overridden)
    assert any(overrides.max_waiting is not None for overrides in overridden)
    assert any(overrides.max_running is not None for overrides in overridden)
    assert any(overrides.max_daily is None for overrides in overridden), "the daily fallback"
    assert any(overrides.max_waiting is None for overrides in overridden), "the waiting fallback"
    started_by_id = [s.expect for s in refusals if s.operation is Operation.START]
    for reason in ("jobs running (max_running", "pool is full", "rate allows the next start"):
        assert any(
            isinstance(refusal, Refusal) and refusal.reason and reason in refusal.reason
            for refusal in started_by_id
        ), reason
    claims = [scenario for scenario in SCENARIOS if isinstance(scenario.expect, Claimed)]
    assert any(len({seed.user for seed in scenario.queue}) > 1 for scenario in claims)
    assert any(overrides.weight for _, overrides in (o for s in claims for o in s.others))
    assert {limits.type for s in claims for limits in s.type_limits} == {"gpu", "mail"}
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

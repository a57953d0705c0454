"""Nothing lost under faults: the experiment on each store, and the checker's own checks.

The runs are short (CI): a few hundred jobs over about half a minute, each fault
a few times; ``make faults`` runs the long one. ``JOBDESK_FAULTS`` narrows the
faults (``kill_worker,pause_worker`` spares a PostgreSQL server others are using).

The mutation checks run the same checker on a store with a guarantee switched
off in this process (fencing) or in the database (the per-user serialisation):
it must fail, so it cannot silently go blind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobdesk import JobDesk, Limits
from jobdesk.errors import InvalidTransition, LeaseLost
from jobdesk.testing import ManualClock
from tests.faults.app import JOB_TYPE
from tests.faults.checker import CreateOp, Event, Observed, Report, StoredJob, check
from tests.faults.experiment import (
    FAULTS,
    Plan,
    _Database,
    _observe,
    faults_from_env,
    run_experiment,
)
from tests.integration.test_postgres_store import race_four_processes, without_the_user_lock

PLANS = {
    "sqlite": Plan(duration=20, target_jobs=250, fault_interval=2.0),
    "postgres": Plan(duration=30, target_jobs=300, fault_interval=2.0),
}


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_no_acknowledged_job_is_lost_or_ends_twice_under_faults(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    faults = tuple(fault for fault in faults_from_env(list(FAULTS)) if kind in FAULTS[fault])
    plan = PLANS[kind]
    plan = Plan(**{**plan.__dict__, "faults": faults})
    run = await run_experiment(kind, plan, tmp_path, server_url=server)

    report = run.report
    print(f"\n{kind}: {run.seconds:.0f} s\n{report.summary()}")
    for fault_kind, target, seconds in report.recovery:
        shown = "never" if seconds is None else f"{seconds:.2f} s"
        print(f"  {fault_kind} ({target}): recovered after {shown}")
    assert report.ok, report.summary()
    assert run.integrity in ("ok", "n/a")
    injected = Counter(fault.kind for fault in run.faults)
    assert set(injected) == set(faults), f"faults injected: {dict(injected)}"
    # The run did real work under those faults, and the limits were reached.
    assert report.acknowledged >= 100
    assert report.refused > 0
    assert report.terminal["completed"] >= report.acknowledged * 0.8
    held = [fault for fault in run.faults if fault.held]
    recovered = [
        seconds
        for fault, (_, _, seconds) in zip(run.faults, report.recovery, strict=True)
        if fault.held
    ]
    assert None not in recovered, f"the jobs of a killed or paused worker never ended: {held}"


# -- the checker must fail when a guarantee is switched off ----------------------------------


@contextlib.contextmanager
def fencing_switched_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The mutation: a worker's writes no longer check that it holds the job's attempt."""
    with monkeypatch.context() as patched:
        patched.setattr("jobdesk.lifecycle.hold", lambda job, worker, attempt, now: None)
        yield


async def stale_worker_story(desk: JobDesk, clock: ManualClock) -> Report:
    """Worker A's lease runs out mid-job; B runs the job again; then both try to complete it."""
    job = await desk.create_job("u", JOB_TYPE, {}, idempotency_key="k")
    a = await desk.verify_worker_token(await desk.create_worker_token("a"))
    b = await desk.verify_worker_token(await desk.create_worker_token("b"))
    [first] = await desk.claim_jobs(a)
    clock.advance(desk.limits.lease_seconds + 1)
    assert await desk.requeue_expired() == 1
    clock.advance(desk.limits.retry_backoff_max_seconds)
    [second] = await desk.claim_jobs(b)
    for worker, held in ((a, first), (b, second)):
        with contextlib.suppress(LeaseLost, InvalidTransition):
            await desk.complete_job(worker, job.id, {"attempt": held.attempt}, attempt=held.attempt)
    stored = await desk.get_job_status(job.id, "u")
    history = await desk.get_job_history(job.id, "u")
    observed = Observed(
        [StoredJob(job.id, "u", stored.status.value, stored.attempt, "k", stored.result)],
        [
            Event(seq, job.id, "u", event.status.value, event.attempt, event.at)
            for seq, event in enumerate(history, start=1)
        ],
    )
    acknowledged = [CreateOp("k", "u", "library", "ok", job_id=job.id)]
    return check(acknowledged, [], observed, max_active={}, max_daily={})


async def test_the_checker_passes_the_stale_worker_story_with_fencing(
    desk: JobDesk, clock: ManualClock
) -> None:
    report = await stale_worker_story(desk, clock)
    assert report.ok, report.summary()


async def test_the_checker_fails_the_stale_worker_story_without_fencing(
    desk: JobDesk, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fencing_switched_off(monkeypatch):
        report = await stale_worker_story(desk, clock)
    assert not report.ok
    assert report.stale_results, report.summary()


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("serialised", [True, False], ids=["serialised", "mutated"])
async def test_the_checker_sees_a_limit_overrun_when_creates_are_not_serialised(
    serialised: bool, tmp_path: Path, postgres_server: str
) -> None:
    database = _Database("postgres", tmp_path, postgres_server)
    database.create()
    try:
        limits = Limits(max_active_per_user=100_000, max_created_per_day=100_000)
        async with JobDesk.open(database.url, limits=limits) as desk:
            await desk.set_user_limits("racer", max_active=10)
        if not serialised:
            without_the_user_lock(database.url)
        await race_four_processes(database.url, limits)
        observed = await asyncio.to_thread(_observe, database)
    finally:
        await asyncio.to_thread(database.drop)
    report = check([], [], observed, max_active={"racer": 10}, max_daily={})
    if serialised:
        assert not report.limit_violations, report.summary()
    else:
        assert report.limit_violations, "the checker missed an overrun it must see"

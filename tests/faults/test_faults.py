"""Nothing lost under faults: the experiment on each store, and the checker's own checks.

The runs are short (CI): a few hundred jobs over half a minute or so, each fault
kind at least twice; ``make faults`` runs the long one. ``JOBDESK_FAULTS`` narrows
the faults (``kill_worker,pause_worker`` spares a PostgreSQL server others are
using); the assertions on each kind then apply to the kinds chosen.

The mutation checks make sure the checker cannot silently go blind: the real
experiment, run as a test build without fencing, must fail; so must a scripted
stale-worker story on each store with fencing switched off in this process, and
a race of creates with the per-user serialisation removed from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobdesk import JobDesk, JobSpec
from jobdesk.errors import InvalidTransition, LeaseLost
from jobdesk.testing import ManualClock
from tests.faults.app import JOB_TYPE
from tests.faults.checker import CreateOp, Event, Execution, Observed, Report, StoredJob, check
from tests.faults.cluster import Database
from tests.faults.experiment import FAULTS, Plan, Run, faults_from_env, observe, run_experiment
from tests.integration.test_postgres_store import (
    UNLIMITED,
    claim_without_the_user_lock,
    create_without_the_user_lock,
    race_four_processes,
)

PLANS = {
    "sqlite": Plan(duration=20, target_jobs=250, fault_interval=1.0, min_each=2),
    "postgres": Plan(duration=24, target_jobs=300, fault_interval=1.0, min_each=2),
}
#: a run made for the paused-worker story: slow jobs to pause in, and only pauses
PAUSES = Plan(
    duration=15,
    target_jobs=150,
    fault_interval=0.5,
    faults=("pause_worker",),
    min_each=3,
    slow_share=0.35,
    db_workers=2,
    http_workers=1,
)


def show(kind: str, run: Run) -> None:
    """The run's report, and each fault's recovery, in the test's output."""
    print(f"\n{kind}: {run.seconds:.0f} s\n{run.report.summary()}")
    for fault, recovery in zip(run.faults, run.report.recovery, strict=True):
        shown = "never" if recovery.seconds is None else f"{recovery.seconds:.2f} s"
        print(
            f"  {fault.label} ({fault.target}): held {len(fault.held)}, superseded "
            f"{len(fault.superseded)}; {recovery.measure} after {shown}"
        )


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_no_acknowledged_job_is_lost_or_ends_twice_under_faults(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    faults = tuple(fault for fault in faults_from_env(list(FAULTS)) if kind in FAULTS[fault])
    plan = Plan(**{**PLANS[kind].__dict__, "faults": faults})
    run = await run_experiment(kind, plan, tmp_path, server_url=server)
    show(kind, run)

    report = run.report
    assert report.ok, report.summary()
    assert run.integrity in ("ok", "n/a")
    assert not run.died, f"processes died on their own: {run.died}"
    # Every fault kind fired, more than once, and hit something.
    injected = Counter(fault.kind for fault in run.faults)
    assert all(injected[fault] >= 2 for fault in faults), f"faults injected: {dict(injected)}"
    for hitting in {"kill_worker", "pause_worker"} & set(faults):
        assert any(f.held for f in run.faults if f.kind == hitting), f"no {hitting} held a job"
    if "pause_worker" in faults:
        assert any(f.superseded for f in run.faults), "no paused worker's job was taken over"
    if "terminate_backends" in faults:
        assert all(f.connections > 0 for f in run.faults if f.kind == "terminate_backends")
    # The run did real work under those faults, and the limits were reached.
    assert report.acknowledged >= 100
    assert report.refused > 0
    assert report.terminal["completed"] >= report.acknowledged * 0.8
    assert report.executions >= report.terminal["completed"] > 0


def mutant_logs(directory: Path) -> int:
    """How many of the run's process logs say they ran the mutant."""
    logs = [*directory.glob("*-worker-*.log"), directory / "server.log"]
    return sum("mutant 'no-fencing'" in log.read_text() for log in logs)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_the_checker_fails_a_real_run_whose_workers_have_no_fencing(
    tmp_path: Path,
) -> None:
    plan = Plan(**{**PAUSES.__dict__, "mutant": "no-fencing"})
    run = await run_experiment("sqlite", plan, tmp_path)
    show("sqlite without fencing", run)

    assert any(f.superseded for f in run.faults), "no paused worker's job was taken over"
    assert mutant_logs(tmp_path) == 4, "every jobdesk process runs the test build"
    assert not run.report.ok
    assert run.report.stale_results or run.report.double_terminal, run.report.summary()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_the_same_paused_workers_are_fenced_off_in_the_real_build(tmp_path: Path) -> None:
    run = await run_experiment("sqlite", PAUSES, tmp_path)
    show("sqlite", run)

    assert any(f.superseded for f in run.faults), "no paused worker's job was taken over"
    assert run.report.ok, run.report.summary()


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
    executions = [Execution(job.id, first.attempt, "a", clock().timestamp())]
    clock.advance(desk.limits.lease_seconds + 1)
    assert await desk.requeue_expired() == 1
    clock.advance(desk.limits.retry_backoff_max_seconds)
    [second] = await desk.claim_jobs(b)
    executions.append(Execution(job.id, second.attempt, "b", clock().timestamp()))
    for worker, held in ((a, first), (b, second)):
        with contextlib.suppress(LeaseLost, InvalidTransition):
            await desk.complete_job(worker, job.id, {"attempt": held.attempt}, attempt=held.attempt)
    stored = await desk.get_job_status(job.id, "u")
    history = await desk.get_job_history(job.id, "u")
    finished = stored.finished_at.timestamp() if stored.finished_at else None
    observed = Observed(
        [StoredJob(job.id, "u", stored.status.value, stored.attempt, "k", stored.result, finished)],
        [
            Event(seq, job.id, "u", event.status.value, event.attempt, event.at)
            for seq, event in enumerate(history, start=1)
        ],
    )
    acknowledged = [CreateOp("k", "u", "library", "ok", job_id=job.id)]
    return check(acknowledged, executions, observed, max_running={}, max_waiting={}, max_daily={})


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
@pytest.mark.parametrize("racing", ["creates", "claims"])
@pytest.mark.parametrize("serialised", [True, False], ids=["serialised", "mutated"])
async def test_the_checker_sees_a_limit_overrun_when_a_user_is_not_serialised(
    serialised: bool, racing: str, tmp_path: Path, postgres_server: str
) -> None:
    database = Database("postgres", tmp_path, postgres_server)
    database.create()
    claiming = racing == "claims"
    try:
        async with JobDesk.open(database.url, limits=UNLIMITED) as desk:
            if claiming:
                specs = [JobSpec("render", {"n": n}) for n in range(120)]
                await desk.create_jobs("racer", specs)
            await desk.set_user_limits("racer", max_running=10, max_waiting=10)
        if not serialised:
            mutate = claim_without_the_user_lock if claiming else create_without_the_user_lock
            mutate(database.url)
        await race_four_processes(database.url, UNLIMITED, claiming=claiming)
        observed = await asyncio.to_thread(observe, database)
    finally:
        await asyncio.to_thread(database.drop)
    # The claims' 120 jobs were created before the waiting limit: not judged by it.
    waiting = {} if claiming else {"racer": 10}
    report = check([], [], observed, max_running={"racer": 10}, max_waiting=waiting, max_daily={})
    if serialised:
        assert not report.limit_violations, report.summary()
    else:
        assert report.limit_violations, "the checker missed an overrun it must see"

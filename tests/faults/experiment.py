"""The fault-injection experiment: real processes, real faults, then the checker.

One run: a fresh database (an SQLite file, or a PostgreSQL database of its own),
``jobdesk serve`` and several ``jobdesk worker`` processes (on the database and
over HTTP) running :mod:`tests.faults.app` (:mod:`tests.faults.cluster`); clients
in this process creating jobs through the library and over HTTP, recording each
outcome (:mod:`tests.faults.clients`); a nemesis injecting faults in turn
(:mod:`tests.faults.nemesis`) for the plan's duration and until each kind fired
often enough. Then the faults stop, the clients go on a few seconds (so that
every fault is followed by work that shows the system recovered), everything
drains, and :func:`tests.faults.checker.check` reads the history.

The CI test (``tests/faults/test_faults.py``) runs a short plan; ``make faults``
(``bench/faults.py``) a long one. A plan with a ``mutant`` runs every jobdesk
process as that test build (:mod:`tests.faults.mutant`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jobdesk import JobDesk, Limits
from tests.faults.checker import (
    TERMINAL,
    CreateOp,
    Event,
    Execution,
    Fault,
    Observed,
    Report,
    StoredJob,
    check,
)
from tests.faults.clients import Clients
from tests.faults.cluster import Cluster, Database, worker_name
from tests.faults.nemesis import FAULTS, Nemesis, epoch

__all__ = ["FAULTS", "Plan", "Run", "faults_from_env", "observe", "run_experiment"]


@dataclass(frozen=True)
class Plan:
    """How big a run is and which faults it injects."""

    #: seconds of load under faults, at least (the nemesis may go on until ``min_each``)
    duration: float = 25.0
    #: about how many creates the clients attempt over ``duration``
    target_jobs: int = 300
    users: int = 6
    #: each user's running cap (jobs processing at once)
    max_running: int = 4
    #: each user's waiting limit (pending jobs), small enough to refuse creates
    max_waiting: int = 4
    #: the daily limit of one user (``daily-user``), small enough to be reached
    daily_limit: int = 25
    clients: int = 4
    #: the share of creates that are slow jobs (the ones a paused worker is chosen for)
    slow_share: float = 0.1
    db_workers: int = 3
    http_workers: int = 1
    concurrency: int = 4
    lease_seconds: float = 2.0
    fault_interval: float = 2.5
    faults: tuple[str, ...] = tuple(FAULTS)
    #: each fault kind fires at least this often (the load lasts until it has)
    min_each: int = 1
    #: seconds of load after the last fault, so every fault has work after it
    tail: float = 3.0
    drain_timeout: float = 90.0
    seed: int = 1
    #: a test build to run every jobdesk process as (see :mod:`tests.faults.mutant`)
    mutant: str | None = None


@dataclass
class Run:
    """What one run saw, and the checker's report."""

    report: Report
    creates: list[CreateOp]
    faults: list[Fault]
    #: ``PRAGMA integrity_check`` at the end (``n/a`` on PostgreSQL)
    integrity: str
    seconds: float
    jobs_per_second: float
    #: processes that died on their own during the run (not by the nemesis)
    died: list[str]
    #: execution records cut short (by a kill -9 in the middle of the write)
    torn_records: int


def observe(database: Database) -> Observed:
    """The jobs and their history, as the database holds them."""
    jobs = [
        StoredJob(
            job_id,
            user,
            status,
            attempt,
            key,
            json.loads(result) if isinstance(result, str) else result,
            epoch(finished_at),
        )
        for job_id, user, status, attempt, key, result, finished_at in database.rows(
            "SELECT id, user_id, status, attempt, idempotency_key, result, finished_at FROM jobs"
        )
    ]
    events = [
        Event(
            seq,
            job_id,
            user or "",  # no such job: the checker reports the history as orphaned
            status,
            attempt,
            at if isinstance(at, datetime) else datetime.fromisoformat(at).astimezone(UTC),
            worker,
        )
        for seq, job_id, user, status, attempt, at, worker in database.rows(
            "SELECT e.id, e.job_id, j.user_id, e.status, e.attempt, e.at, e.worker_id "
            "FROM job_events e LEFT JOIN jobs j ON j.id = e.job_id"
        )
    ]
    return Observed(jobs, events)


def read_executions(directory: Path) -> tuple[list[Execution], int]:
    """The handlers' records, and how many lines a kill -9 cut short."""
    found: list[Execution] = []
    torn = 0
    for log in sorted((directory / "executions").glob("*.log")):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4:
                found.append(Execution(parts[0], int(parts[1]), parts[2], float(parts[3])))
            else:
                torn += 1
    return found, torn


async def _drain(database: Database, within: float) -> None:
    """Until no job is pending or processing (due or not), or ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            [(left,)] = await asyncio.to_thread(
                database.rows, "SELECT count(*) FROM jobs WHERE status IN ('pending', 'processing')"
            )
            if left == 0:
                return
        await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def _opened(database: Database, plan: Plan) -> AsyncIterator[JobDesk]:
    limits = Limits(
        max_running_per_user=plan.max_running,
        max_waiting_per_user=plan.max_waiting,
        max_created_per_day=1_000_000,
        lease_seconds=plan.lease_seconds,
        retry_backoff_seconds=0.2,
    )
    async with JobDesk.open(database.url, limits=limits) as desk:
        yield desk


async def run_experiment(
    kind: str, plan: Plan, directory: Path, *, server_url: str | None = None
) -> Run:
    """One run on ``kind`` (``sqlite`` or ``postgres``), files under ``directory``."""
    database = Database(kind, directory, server_url)
    database.create()
    users = [f"user-{n}" for n in range(plan.users - 1)] + ["daily-user"]
    cluster: Cluster | None = None
    began = time.time()
    try:
        async with _opened(database, plan) as desk:
            # Stored per user, so that every process (the server too) enforces the same
            # limits: a process's default Limits are its own.
            for user in users:
                await desk.set_user_limits(
                    user, max_running=plan.max_running, max_waiting=plan.max_waiting
                )
            await desk.set_user_limits(
                "daily-user",
                max_running=plan.max_running,
                max_waiting=plan.max_waiting,
                max_daily=plan.daily_limit,
            )
            tokens = {user: await desk.create_user_token(user) for user in users}
            workers = range(plan.db_workers + plan.http_workers)
            names = [worker_name(n, plan.db_workers) for n in workers]
            worker_tokens = [await desk.create_worker_token(name) for name in names]
            cluster = Cluster(
                database,
                directory,
                worker_tokens,
                db_workers=plan.db_workers,
                concurrency=plan.concurrency,
                lease_seconds=plan.lease_seconds,
                mutant=plan.mutant,
            )
            await asyncio.to_thread(cluster.start)
            clients = Clients(
                desk,
                cluster.base,
                tokens,
                rate=plan.target_jobs / plan.duration,
                clients=plan.clients,
                slow_share=plan.slow_share,
                seed=plan.seed,
            )
            nemesis = Nemesis(
                cluster,
                database,
                directory,
                kinds=[fault for fault in plan.faults if kind in FAULTS[fault]],
                users=users,
                want_slow=clients.slow_wanted.set,
                interval=plan.fault_interval,
                lease_seconds=plan.lease_seconds,
                seed=plan.seed,
            )
            loads = [asyncio.create_task(clients.run(n)) for n in range(plan.clients)]
            try:
                await nemesis.run(plan.duration, min_each=plan.min_each, longest=plan.duration * 3)
                await asyncio.sleep(plan.tail)
            finally:
                clients.stop.set()
                await asyncio.gather(*loads)
            await _drain(database, plan.drain_timeout)
        died = await asyncio.to_thread(cluster.stop)
        observed = await asyncio.to_thread(observe, database)
        integrity = await asyncio.to_thread(database.integrity)
        executions, torn = read_executions(directory)
        report = check(
            clients.creates,
            executions,
            observed,
            max_running=dict.fromkeys(users, plan.max_running),
            max_waiting=dict.fromkeys(users, plan.max_waiting),
            max_daily={"daily-user": plan.daily_limit},
            faults=nemesis.faults,
            http_workers=cluster.http_workers,
            lease_seconds=plan.lease_seconds,
        )
        seconds = time.time() - began
        done = sum(1 for job in observed.jobs if job.status in TERMINAL)
        return Run(
            report,
            clients.creates,
            nemesis.faults,
            integrity,
            seconds,
            done / seconds,
            died,
            torn,
        )
    finally:
        if cluster is not None:
            await asyncio.to_thread(cluster.stop)
        await asyncio.to_thread(database.drop)


def faults_from_env(default: Sequence[str]) -> tuple[str, ...]:
    """``JOBDESK_FAULTS`` (comma-separated) narrows the faults, e.g. to spare a shared server."""
    chosen = os.environ.get("JOBDESK_FAULTS")
    if not chosen:
        return tuple(default)
    names = tuple(name.strip() for name in chosen.split(",") if name.strip())
    unknown = sorted(set(names) - set(FAULTS))
    if unknown:
        raise ValueError(f"JOBDESK_FAULTS names unknown faults: {unknown}")
    return names

"""The fault-injection experiment: real processes, real faults, then the checker.

One run: a fresh database (an SQLite file, or a PostgreSQL database of its own),
``jobdesk serve`` and several ``jobdesk worker`` processes (on the database and
over HTTP) running :mod:`tests.faults.app`; clients in this process creating jobs
through the library and over HTTP, recording each outcome; a nemesis injecting
faults on a schedule. Then the faults stop, everything drains, and
:func:`tests.faults.checker.check` reads the history.

The CI test (``tests/faults/test_faults.py``) runs a short plan; ``make faults``
(``bench/faults.py``) a long one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from jobdesk import JobDesk, Limits
from jobdesk.errors import JobdeskError, RateLimited, StoreUnavailable
from tests.faults.app import JOB_TYPE
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

__all__ = ["FAULTS", "Plan", "Run", "run_experiment"]

REPOSITORY = Path(__file__).resolve().parents[2]
APP = "tests.faults.app:registry"
#: every fault the nemesis knows, and the stores it applies to
FAULTS = {
    "kill_worker": ("sqlite", "postgres"),
    "pause_worker": ("sqlite", "postgres"),
    "kill_server": ("sqlite", "postgres"),
    "terminate_backends": ("postgres",),
    "restart_postgres": ("postgres",),
}


@dataclass(frozen=True)
class Plan:
    """How big a run is and which faults it injects."""

    #: seconds of load under faults (the drain comes after)
    duration: float = 25.0
    #: the most jobs the clients try to create
    target_jobs: int = 300
    users: int = 6
    max_active: int = 4
    #: the daily limit of one user (``daily-user``), small enough to be reached
    daily_limit: int = 25
    clients: int = 4
    db_workers: int = 3
    http_workers: int = 1
    concurrency: int = 4
    lease_seconds: float = 2.0
    fault_interval: float = 2.5
    faults: tuple[str, ...] = tuple(FAULTS)
    drain_timeout: float = 90.0
    seed: int = 1


@dataclass
class Run:
    """What one run saw, and the checker's report."""

    report: Report
    creates: list[CreateOp]
    faults: list[Fault]
    integrity: str
    seconds: float
    jobs_per_second: float


@dataclass
class _Process:
    name: str
    arguments: list[str]
    env: dict[str, str]
    log: Path
    child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.child = subprocess.Popen(
                [sys.executable, "-m", "jobdesk", *self.arguments],
                cwd=REPOSITORY,
                env={**os.environ, **self.env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def signal(self, number: signal.Signals) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(number)

    def stop(self, within: float = 15.0) -> None:
        if self.child is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.child.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait(timeout=within)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _Database:
    """The run's own database, and plain SQL on it for the nemesis and the checker."""

    def __init__(self, kind: str, directory: Path, server_url: str | None) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.path = directory / "faults.db"
            self.url = f"sqlite:///{self.path}"
            self.plain = ""
        else:
            assert server_url is not None, "PostgreSQL runs need JOBDESK_TEST_POSTGRES_URL"
            self.name = f"jobdesk_faults_{uuid.uuid4().hex[:10]}"
            parts = urlsplit(server_url)
            self.admin = urlunsplit(parts._replace(query=""))
            self.plain = urlunsplit(parts._replace(path=f"/{self.name}", query=""))
            self.url = self.plain + "?pool_max=8"

    def create(self) -> None:
        if self.kind == "postgres":
            with psycopg.connect(self.admin, autocommit=True) as connection:
                connection.execute(f"CREATE DATABASE {self.name}")

    def drop(self) -> None:
        if self.kind == "postgres":
            with psycopg.connect(self.admin, autocommit=True) as connection:
                connection.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def rows(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (``?`` placeholders, tables unqualified: both stores read it)."""
        if self.kind == "sqlite":
            lite = sqlite3.connect(self.path, timeout=30)
            try:
                return lite.execute(sql, parameters).fetchall()
            finally:
                lite.close()
        with psycopg.connect(
            self.plain, autocommit=True, options="-c search_path=jobdesk"
        ) as connection:
            statement = sql.replace("?", "%s").encode()
            return connection.execute(statement, parameters).fetchall()

    def terminate_backends(self) -> int:
        with psycopg.connect(self.admin, autocommit=True) as connection:
            return len(
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.name,),
                ).fetchall()
            )

    def integrity(self) -> str:
        if self.kind != "sqlite":
            return "n/a"
        return str(self.rows("PRAGMA integrity_check")[0][0])


def _restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version,
            "main",
            "restart",
            "-m",
            "immediate",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for _ in range(600):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not come back within 60 s")


class _Cluster:
    """``jobdesk serve`` and the worker processes of one run."""

    def __init__(self, plan: Plan, database: _Database, directory: Path, tokens: list[str]):
        self.plan = plan
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        limits = ["--lease-seconds", str(plan.lease_seconds), "--retry-backoff", "0.2"]
        self.server = _Process(
            "server",
            ["serve", "--db", database.url, "--port", str(self.port), "--log-level", "warning",
             *limits],
            {"JOBDESK_REAP_INTERVAL_SECONDS": "0.5"},
            directory / "server.log",
        )  # fmt: skip
        self.workers: list[_Process] = []
        executions = directory / "executions"
        executions.mkdir(exist_ok=True)
        common = [
            "worker", "--app", APP, "--app-dir", str(REPOSITORY), "--concurrency",
            str(plan.concurrency), "--poll-interval", "0.2", "--grace", "1",
            "--log-level", "warning",
        ]  # fmt: skip
        for number, token in enumerate(tokens):
            remote = number >= plan.db_workers
            name = f"{'http' if remote else 'db'}-worker-{number}"
            where = (
                ["--server", self.base]
                if remote
                else ["--db", database.url, *limits, "--reap-interval", "0.5"]
            )
            env = {
                "JOBDESK_WORKER_TOKEN": token,
                "FAULTS_WORKER": name,
                "FAULTS_EXECUTIONS": str(executions / f"{name}.log"),
            }
            self.workers.append(_Process(name, [*common, *where], env, directory / f"{name}.log"))

    def start_server(self) -> None:
        self.server.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"jobdesk serve did not start; see {self.server.log}")

    def start(self) -> None:
        self.start_server()
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.server.stop()


class _Clients:
    """Creates through the library and over HTTP, each outcome recorded."""

    def __init__(self, plan: Plan, desk: JobDesk, base: str, tokens: dict[str, str]) -> None:
        self.plan = plan
        self.desk = desk
        self.base = base
        self.tokens = tokens
        self.creates: list[CreateOp] = []
        self.stop = asyncio.Event()

    async def run(self, number: int) -> None:
        rng = random.Random(self.plan.seed * 1000 + number)
        pause = self.plan.clients * self.plan.duration / self.plan.target_jobs
        async with httpx.AsyncClient(base_url=self.base, timeout=5) as http:
            while not self.stop.is_set() and len(self.creates) < self.plan.target_jobs:
                user = rng.choice(sorted(self.tokens))
                payload = {"seconds": rng.uniform(0.02, 0.3), "fail_first": rng.random() < 0.1}
                key = uuid.uuid4().hex
                if rng.random() < 0.5:
                    op = await self._library(user, key, payload)
                else:
                    op = await self._http(http, user, key, payload)
                self.creates.append(op)
                if op.outcome == "ok" and rng.random() < 0.05:
                    with contextlib.suppress(JobdeskError):
                        assert op.job_id is not None
                        await self.desk.cancel_job(op.job_id, user)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), rng.uniform(0.5, 1.5) * pause)

    async def _library(self, user: str, key: str, payload: dict[str, Any]) -> CreateOp:
        try:
            job = await self.desk.create_job(
                user, JOB_TYPE, payload, max_attempts=8, idempotency_key=key
            )
        except RateLimited as exc:
            return CreateOp(key, user, "library", "refused", detail=exc.limit)
        except StoreUnavailable as exc:
            return CreateOp(key, user, "library", "unknown", detail=str(exc)[:200])
        except JobdeskError as exc:
            return CreateOp(key, user, "library", "failed", detail=str(exc)[:200])
        return CreateOp(key, user, "library", "ok", job_id=job.id)

    async def _http(
        self, http: httpx.AsyncClient, user: str, key: str, payload: dict[str, Any]
    ) -> CreateOp:
        body = {"type": JOB_TYPE, "input": payload, "max_attempts": 8, "idempotency_key": key}
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        try:
            answer = await http.post("/api/v1/jobs", json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
            return CreateOp(key, user, "http", "failed", detail=type(exc).__name__)
        except httpx.HTTPError as exc:
            return CreateOp(key, user, "http", "unknown", detail=type(exc).__name__)
        if answer.status_code in (200, 201):
            return CreateOp(key, user, "http", "ok", job_id=answer.json()["id"])
        if answer.status_code == 429:
            return CreateOp(key, user, "http", "refused", detail=answer.json().get("limit", ""))
        if answer.status_code >= 500:
            return CreateOp(key, user, "http", "unknown", detail=str(answer.status_code))
        return CreateOp(key, user, "http", "failed", detail=answer.text[:200])


class _Nemesis:
    """Injects one fault every ``fault_interval`` seconds, recording each."""

    def __init__(self, plan: Plan, kind: str, cluster: _Cluster, database: _Database) -> None:
        self.plan = plan
        self.cluster = cluster
        self.database = database
        self.kinds = [fault for fault in plan.faults if kind in FAULTS[fault]]
        self.faults: list[Fault] = []
        self.rng = random.Random(plan.seed)

    def _held(self, worker: _Process) -> tuple[str, ...]:
        rows = self.database.rows(
            "SELECT id FROM jobs WHERE status = 'processing' AND worker_id = ?", (worker.name,)
        )
        return tuple(row[0] for row in rows)

    async def run(self, stop: asyncio.Event) -> None:
        round_robin = list(self.kinds)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.plan.fault_interval)
            if stop.is_set() or not round_robin:
                return
            kind = round_robin[len(self.faults) % len(round_robin)]
            await asyncio.to_thread(self._inject, kind)

    def _inject(self, kind: str) -> None:
        started = time.time()
        target, held = "", tuple[str, ...]()
        if kind in ("kill_worker", "pause_worker"):
            worker = self.rng.choice(self.cluster.workers)
            target = worker.name
            with contextlib.suppress(Exception):  # the database may be down: held unknown
                held = self._held(worker)
            if kind == "kill_worker":
                worker.signal(signal.SIGKILL)
                assert worker.child is not None
                worker.child.wait(timeout=10)
                time.sleep(0.3)
                worker.start()
            else:
                worker.signal(signal.SIGSTOP)
                time.sleep(self.plan.lease_seconds + 1)
                worker.signal(signal.SIGCONT)
        elif kind == "kill_server":
            target = "jobdesk serve"
            self.cluster.server.signal(signal.SIGKILL)
            assert self.cluster.server.child is not None
            self.cluster.server.child.wait(timeout=10)
            time.sleep(0.3)
            self.cluster.start_server()
        elif kind == "terminate_backends":
            target = f"{self.database.terminate_backends()} connections"
        elif kind == "restart_postgres":
            target = "postgresql (immediate)"
            _restart_postgres()
        self.faults.append(Fault(kind, target, started, time.time(), held))


async def _drain(database: _Database, within: float) -> None:
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


def _observe(database: _Database) -> Observed:
    jobs = [
        StoredJob(
            job_id,
            user,
            status,
            attempt,
            key,
            json.loads(result) if isinstance(result, str) else result,
        )
        for job_id, user, status, attempt, key, result in database.rows(
            "SELECT id, user_id, status, attempt, idempotency_key, result FROM jobs "
        )
    ]
    events = [
        Event(
            seq,
            job_id,
            user,
            status,
            attempt,
            at if isinstance(at, datetime) else datetime.fromisoformat(at).astimezone(UTC),
        )
        for seq, job_id, user, status, attempt, at in database.rows(
            "SELECT e.id, e.job_id, j.user_id, e.status, e.attempt, e.at "
            "FROM job_events e JOIN jobs j ON j.id = e.job_id "
        )
    ]
    return Observed(jobs, events)


def _executions(directory: Path) -> list[Execution]:
    found: list[Execution] = []
    for log in sorted((directory / "executions").glob("*.log")):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:  # a line cut by kill -9 is skipped
                found.append(Execution(parts[0], int(parts[1]), parts[2]))
    return found


@contextlib.asynccontextmanager
async def _opened(database: _Database, plan: Plan) -> AsyncIterator[JobDesk]:
    limits = Limits(
        max_active_per_user=plan.max_active,
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
    database = _Database(kind, directory, server_url)
    database.create()
    users = [f"user-{n}" for n in range(plan.users - 1)] + ["daily-user"]
    cluster: _Cluster | None = None
    began = time.time()
    try:
        async with _opened(database, plan) as desk:
            # Stored per user, so that every process (the server too) enforces the same
            # limits: a process's default Limits are its own.
            for user in users:
                await desk.set_user_limits(user, max_active=plan.max_active)
            await desk.set_user_limits(
                "daily-user", max_active=plan.max_active, max_daily=plan.daily_limit
            )
            tokens = {user: await desk.create_user_token(user) for user in users}
            worker_tokens = [
                await desk.create_worker_token(
                    f"{'http' if n >= plan.db_workers else 'db'}-worker-{n}"
                )
                for n in range(plan.db_workers + plan.http_workers)
            ]
            cluster = _Cluster(plan, database, directory, worker_tokens)
            await asyncio.to_thread(cluster.start)
            clients = _Clients(plan, desk, cluster.base, tokens)
            nemesis = _Nemesis(plan, kind, cluster, database)
            stop_faults = asyncio.Event()
            faults = asyncio.create_task(nemesis.run(stop_faults))
            loads = [asyncio.create_task(clients.run(n)) for n in range(plan.clients)]
            await asyncio.sleep(plan.duration)
            clients.stop.set()
            stop_faults.set()
            await asyncio.gather(faults, *loads)
            await _drain(database, plan.drain_timeout)
        await asyncio.to_thread(cluster.stop)
        observed = await asyncio.to_thread(_observe, database)
        integrity = await asyncio.to_thread(database.integrity)
        report = check(
            clients.creates,
            _executions(directory),
            observed,
            max_active=dict.fromkeys(users, plan.max_active),
            max_daily={"daily-user": plan.daily_limit},
            faults=nemesis.faults,
        )
        seconds = time.time() - began
        done = sum(1 for job in observed.jobs if job.status in TERMINAL)
        return Run(report, clients.creates, nemesis.faults, integrity, seconds, done / seconds)
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

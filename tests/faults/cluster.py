"""The processes of one run: ``jobdesk serve``, the workers, and their database.

Each process is started as ``python -m jobdesk``, or through
:mod:`tests.faults.mutant` when the run is a mutation test. The database helper
speaks plain SQL for the nemesis and the checker, never through jobdesk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from tests.faults.mutant import VARIABLE as MUTANT_VARIABLE
from tests.processes import free_port

__all__ = ["REPOSITORY", "Cluster", "Database", "Process", "restart_postgres"]

REPOSITORY = Path(__file__).resolve().parents[2]
APP = "tests.faults.app:registry"


@dataclass
class Process:
    """One child process, started (and started again) with the same command line."""

    name: str
    arguments: list[str]
    env: dict[str, str]
    log: Path
    #: the module ``python -m`` runs; a mutant build replaces ``jobdesk`` only
    module: str = "jobdesk"
    mutant: str | None = None
    child: subprocess.Popen[bytes] | None = None
    #: children that ended on their own (not by the nemesis, not at the run's end), and how
    died: list[str] = field(default_factory=list)
    #: the current child is being ended on purpose
    stopping: bool = False

    def start(self) -> None:
        """Start the process (again); a child that had died on its own is recorded."""
        if self.child is not None and self.child.poll() is not None and not self.stopping:
            self.died.append(f"{self.name} exited with {self.child.returncode}")
        mutated = self.mutant is not None and self.module == "jobdesk"
        module = "tests.faults.mutant" if mutated else self.module
        env = {**os.environ, **self.env}
        if mutated and self.mutant is not None:
            env[MUTANT_VARIABLE] = self.mutant
        else:
            env.pop(MUTANT_VARIABLE, None)
        self.stopping = False
        with self.log.open("ab") as output:
            self.child = subprocess.Popen(
                [sys.executable, "-m", module, *self.arguments],
                cwd=REPOSITORY,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    @property
    def alive(self) -> bool:
        """Whether the current child is running (stopped by SIGSTOP counts as running)."""
        return self.child is not None and self.child.poll() is None

    def signal(self, number: signal.Signals) -> bool:
        """Send ``number`` to the running child; False when there was none to send it to."""
        if not self.alive:
            return False
        assert self.child is not None
        self.child.send_signal(number)
        return True

    def kill(self) -> bool:
        """SIGKILL and wait for the end; False when the child was not running."""
        sent = self.signal(signal.SIGKILL)
        self.stopping = True
        if self.child is not None:
            self.child.wait(timeout=10)
        return sent

    def stop(self, within: float = 15.0) -> None:
        """SIGTERM (after SIGCONT, in case it was paused), then SIGKILL if it lingers."""
        if self.child is None:
            return
        if self.child.poll() is not None and not self.stopping:
            self.died.append(f"{self.name} exited with {self.child.returncode}")
        self.stopping = True
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.child.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait(timeout=within)


class Database:
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
            self.plain, autocommit=True, options="-c search_path=jobdesk", connect_timeout=5
        ) as connection:
            statement = sql.replace("?", "%s").encode()
            return connection.execute(statement, parameters).fetchall()

    def terminate_backends(self) -> int:
        """End every connection to the run's database; how many there were."""
        with psycopg.connect(self.admin, autocommit=True) as connection:
            return len(
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.name,),
                ).fetchall()
            )

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` on a fresh connection (``n/a`` on PostgreSQL)."""
        if self.kind != "sqlite":
            return "n/a"
        return "; ".join(str(row[0]) for row in self.rows("PRAGMA integrity_check"))


def restart_postgres() -> float:
    """``pg_ctlcluster ... restart -m immediate`` in its two steps: a crash, then crash
    recovery. Returns when the old server was gone (epoch seconds)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    subprocess.run(
        [*command, "stop", "-m", "immediate"], check=True, capture_output=True, timeout=120
    )
    down = time.time()
    subprocess.run([*command, "start"], check=True, capture_output=True, timeout=120)
    for _ in range(600):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0:
            return down
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not come back within 60 s")


class Cluster:
    """``jobdesk serve`` and the worker processes of one run."""

    def __init__(
        self,
        database: Database,
        directory: Path,
        tokens: list[str],
        *,
        db_workers: int,
        concurrency: int,
        lease_seconds: float,
        mutant: str | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        limits = ["--lease-seconds", str(lease_seconds), "--retry-backoff", "0.2"]
        self.server = Process(
            "server",
            ["serve", "--db", database.url, "--port", str(self.port), "--log-level", "warning",
             *limits],
            {"JOBDESK_REAP_INTERVAL_SECONDS": "0.5"},
            directory / "server.log",
            mutant=mutant,
        )  # fmt: skip
        self.workers: list[Process] = []
        executions = directory / "executions"
        executions.mkdir(exist_ok=True)
        common = [
            "worker", "--app", APP, "--app-dir", str(REPOSITORY), "--concurrency",
            str(concurrency), "--poll-interval", "0.2", "--grace", "1", "--log-level", "warning",
        ]  # fmt: skip
        for number, token in enumerate(tokens):
            name = worker_name(number, db_workers)
            where = (
                ["--server", self.base]
                if name.startswith("http-")
                else ["--db", database.url, *limits, "--reap-interval", "0.5"]
            )
            env = {
                "JOBDESK_WORKER_TOKEN": token,
                "FAULTS_WORKER": name,
                "FAULTS_EXECUTIONS": str(executions / f"{name}.log"),
            }
            self.workers.append(
                Process(name, [*common, *where], env, directory / f"{name}.log", mutant=mutant)
            )

    @property
    def http_workers(self) -> frozenset[str]:
        """The names of the workers that run over HTTP."""
        return frozenset(w.name for w in self.workers if w.name.startswith("http-"))

    def start_server(self) -> None:
        """Start ``jobdesk serve`` and wait until it answers ``/readyz``."""
        self.server.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"jobdesk serve did not start; see {self.server.log}")

    def start(self) -> None:
        """The server, then every worker."""
        self.start_server()
        for worker in self.workers:
            worker.start()

    def stop(self) -> list[str]:
        """Stop every process; the ones that had died on their own, and how."""
        for worker in self.workers:
            worker.stop()
        self.server.stop()
        return [death for process in (*self.workers, self.server) for death in process.died]


def worker_name(number: int, db_workers: int) -> str:
    """``db-worker-N`` for the first ``db_workers``, ``http-worker-N`` after them."""
    return f"{'http' if number >= db_workers else 'db'}-worker-{number}"

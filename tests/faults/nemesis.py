"""The nemesis: one fault at a time, each checked where it lands and recorded.

- ``kill_worker``: SIGKILL a worker that holds jobs (chosen from the database's
  processing jobs), start it again 0.3 s later;
- ``pause_worker``: SIGSTOP a worker in the middle of a slow job's first attempt
  (see :mod:`tests.faults.app`; the clients are asked for one), SIGCONT it once
  the lease has run out and another worker has taken that job over (a pause just
  past the lease, at most lease + 5 s);
- ``kill_server``: SIGKILL ``jobdesk serve``, start it again;
- ``terminate_backends`` (PostgreSQL): ``pg_terminate_backend`` on every connection
  to the run's database;
- ``restart_postgres``: ``stop -m immediate`` then ``start``, a crash and its recovery;
- ``kill_mid_transaction`` (SQLite): start :mod:`tests.faults.crasher`, SIGKILL it
  while its transaction holds the write lock and an uncommitted job (some of it
  spilled into the WAL); then reopen the file, ``PRAGMA integrity_check``, check
  that neither the job nor its history is there and that the write lock is free.

A signal that finds its target not running, and any failed check, is recorded
as the fault's ``failure``: the checker fails the run on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.faults.app import SLOW_TYPE
from tests.faults.checker import TERMINAL, Fault
from tests.faults.cluster import Cluster, Database, Process, restart_postgres

__all__ = ["FAULTS", "Nemesis", "epoch"]

#: every fault the nemesis knows, and the stores it applies to
FAULTS = {
    "kill_worker": ("sqlite", "postgres"),
    "pause_worker": ("sqlite", "postgres"),
    "kill_server": ("sqlite", "postgres"),
    "kill_mid_transaction": ("sqlite",),
    "terminate_backends": ("postgres",),
    "restart_postgres": ("postgres",),
}
#: how long a fault waits for a target holding jobs before it takes any worker
_TARGET_WAIT = 3.0
#: how long a pause waits for a worker in a slow job's first attempt
_SLOW_TARGET_WAIT = 6.0


def epoch(value: Any) -> float | None:
    """A stored time (a datetime, or SQLite's ISO text) in epoch seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()


class Nemesis:
    """Injects the plan's faults in turn, one every ``interval`` seconds, recording each."""

    def __init__(
        self,
        cluster: Cluster,
        database: Database,
        directory: Path,
        *,
        kinds: Sequence[str],
        users: Sequence[str],
        want_slow: Callable[[], None],
        interval: float,
        lease_seconds: float,
        seed: int,
    ) -> None:
        self.cluster = cluster
        self.database = database
        self.directory = directory
        self.kinds = list(kinds)
        self.users = list(users)
        self.want_slow = want_slow
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.faults: list[Fault] = []
        self.rng = random.Random(seed)

    def count(self) -> Counter[str]:
        """How many faults of each kind fired so far."""
        return Counter(fault.kind for fault in self.faults)

    async def run(self, duration: float, *, min_each: int, longest: float) -> None:
        """Faults for ``duration`` seconds and until each kind fired ``min_each`` times,
        but for no more than ``longest`` seconds in all."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        while self.kinds:
            await asyncio.sleep(self.interval)
            elapsed = loop.time() - began
            fired = self.count()
            enough = all(fired[kind] >= min_each for kind in self.kinds)
            if (elapsed >= duration and enough) or elapsed >= longest:
                return
            kind = self.kinds[len(self.faults) % len(self.kinds)]
            self.faults.append(await asyncio.to_thread(self._inject, kind))

    def _inject(self, kind: str) -> Fault:
        started = time.time()
        if kind == "kill_worker":
            return self._kill_worker()
        if kind == "pause_worker":
            return self._pause_worker()
        if kind == "kill_server":
            return self._kill_server()
        if kind == "kill_mid_transaction":
            return self._kill_mid_transaction()
        if kind == "terminate_backends":
            ended = self.database.terminate_backends()
            down = time.time()
            return Fault(kind, f"{ended} connections", started, down, connections=ended, down=down)
        if kind == "restart_postgres":
            down = restart_postgres()
            return Fault(kind, "postgresql (immediate)", started, time.time(), down=down)
        raise ValueError(f"unknown fault {kind!r}")

    # -- workers ----------------------------------------------------------------------------

    def _rows(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows, or none while the database is unreachable (a fault may not pick well then)."""
        with contextlib.suppress(Exception):
            return self.database.rows(sql, parameters)
        return []

    def _worker(self, name: str) -> Process | None:
        return next((w for w in self.cluster.workers if w.name == name), None)

    def _held(self, worker: Process) -> tuple[str, ...]:
        rows = self._rows(
            "SELECT id FROM jobs WHERE status = 'processing' AND worker_id = ?", (worker.name,)
        )
        return tuple(sorted(row[0] for row in rows))

    def _holder(self) -> Process:
        """A worker holding jobs (waiting a little for one), else any worker."""
        deadline = time.monotonic() + _TARGET_WAIT
        while time.monotonic() < deadline:
            rows = self._rows("SELECT DISTINCT worker_id FROM jobs WHERE status = 'processing'")
            holders = [w for w in (self._worker(str(row[0])) for row in rows) if w is not None]
            if holders:
                return self.rng.choice(sorted(holders, key=lambda w: w.name))
            time.sleep(0.05)
        return self.rng.choice(self.cluster.workers)

    def _slow_holder(self) -> tuple[Process, str, int] | None:
        """A worker in the middle of a slow job's first attempt: (worker, job, attempt)."""
        self.want_slow()  # the clients create one now, in case none is running
        deadline = time.monotonic() + _SLOW_TARGET_WAIT
        while time.monotonic() < deadline:
            rows = self._rows(
                "SELECT id, worker_id, attempt, started_at FROM jobs "
                "WHERE status = 'processing' AND type = ? AND attempt = 1",
                (SLOW_TYPE,),
            )
            # Started in the last second: its first attempt (1.5 s) still has a while to run.
            fresh = [
                (worker, str(job_id), int(attempt))
                for job_id, name, attempt, started_at in sorted(rows)
                if (worker := self._worker(str(name))) is not None
                and (epoch(started_at) or 0) > time.time() - 1.0
            ]
            if fresh:
                return self.rng.choice(fresh)
            time.sleep(0.05)
        return None

    def _kill_worker(self) -> Fault:
        worker = self._holder()
        held = self._held(worker)
        started = time.time()
        failure = "" if worker.kill() else "the worker was not running when it was to be killed"
        down = time.time()
        time.sleep(0.3)
        worker.start()
        return Fault(
            "kill_worker", worker.name, started, time.time(), held, failure=failure, down=down
        )

    def _pause_worker(self) -> Fault:
        chosen = self._slow_holder()
        worker = chosen[0] if chosen else self._holder()
        held = self._held(worker)
        started = time.time()
        if not worker.signal(signal.SIGSTOP):
            failure = "the worker was not running when it was to be paused"
            return Fault("pause_worker", worker.name, started, time.time(), held, failure=failure)
        superseded: tuple[str, ...] = ()
        at_least = time.monotonic() + self.lease_seconds + 0.2
        at_most = time.monotonic() + self.lease_seconds + 5.0
        while time.monotonic() < at_most:
            time.sleep(0.05)
            if time.monotonic() < at_least:
                continue
            if chosen is None:
                if time.monotonic() >= at_least + 0.8:  # no slow job: lease + 1 s
                    break
                continue
            _, job_id, attempt = chosen
            rows = self._rows("SELECT status, attempt FROM jobs WHERE id = ?", (job_id,))
            if rows and rows[0][0] == "processing" and int(rows[0][1]) > attempt:
                superseded = (job_id,)  # another worker runs it now, under a later attempt
                break
            if rows and rows[0][0] in TERMINAL:
                break
        failure = "" if worker.signal(signal.SIGCONT) else "the paused worker died while paused"
        return Fault(
            "pause_worker", worker.name, started, time.time(), held, superseded, failure=failure
        )

    # -- the server -------------------------------------------------------------------------

    def _kill_server(self) -> Fault:
        started = time.time()
        killed = self.cluster.server.kill()
        down = time.time()
        time.sleep(0.3)
        self.cluster.start_server()
        failure = "" if killed else "jobdesk serve was not running when it was to be killed"
        return Fault(
            "kill_server", "jobdesk serve", started, time.time(), failure=failure, down=down
        )

    # -- SQLite: a process killed in the middle of its transaction --------------------------

    def _kill_mid_transaction(self) -> Fault:
        number = self.count()["kill_mid_transaction"] + 1
        marker = self.directory / f"crash-{number}-{uuid.uuid4().hex[:8]}.json"
        crasher = Process(
            f"crasher-{number}",
            [self.database.url, str(marker), *self.rng.sample(self.users, len(self.users))],
            {},
            self.directory / f"crasher-{number}.log",
            module="tests.faults.crasher",
        )
        crasher.start()
        deadline = time.monotonic() + 30
        while not marker.exists() and crasher.alive and time.monotonic() < deadline:
            time.sleep(0.005)
        if not marker.exists():
            began = time.time()
            crasher.kill()
            failure = f"the crasher never got into a transaction; see {crasher.log}"
            return Fault("kill_mid_transaction", crasher.name, began, time.time(), failure=failure)
        uncommitted = json.loads(marker.read_text())
        started = time.time()
        failures = [] if crasher.kill() else ["the crasher was gone before the kill"]
        down = time.time()
        failures += self._after_crash(uncommitted["job"], marker.stem)
        return Fault(
            "kill_mid_transaction",
            f"{crasher.name} (job {uncommitted['job']} of {uncommitted['user']})",
            started,
            time.time(),
            failure="; ".join(failures),
            down=down,
        )

    def _after_crash(self, job_id: str, key: str) -> list[str]:
        """Reopen the file: intact, without the uncommitted job, and writable."""
        failures: list[str] = []
        connection = sqlite3.connect(self.database.path, timeout=10, isolation_level=None)
        try:
            integrity = "; ".join(
                str(row[0]) for row in connection.execute("PRAGMA integrity_check")
            )
            if integrity != "ok":
                failures.append(f"integrity_check after the crash: {integrity}")
            [(survived,)] = connection.execute(
                "SELECT count(*) FROM jobs WHERE id = ? OR idempotency_key = ?", (job_id, key)
            ).fetchall()
            if survived:
                failures.append(f"the uncommitted job {job_id} is in the database")
            [(history,)] = connection.execute(
                "SELECT count(*) FROM job_events WHERE job_id = ?", (job_id,)
            ).fetchall()
            if history:
                failures.append(f"{history} uncommitted history rows of {job_id} are there")
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                failures.append(f"no write after the crash: {exc}")
        finally:
            connection.close()
        return failures

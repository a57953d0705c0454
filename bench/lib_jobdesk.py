"""jobdesk adapter for the peer harness (``/work/shared/bench``): jobdesk on an SQLite file.

The harness imports ``lib_<name>`` from ``PYTHONPATH``; put this folder there::

    PYTHONPATH=/work/main/bench python bench.py jobdesk drain --n 10000

The database is the file of ``BENCH_JOBDESK_URL`` (default
``sqlite:////tmp/jobdesk-bench/jobdesk.db``, default durability
``synchronous=full``). ``lib_jobdesk_normal`` is the same adapter on
``?synchronous=normal``.

Producer: ``create_job`` with the limit checks on (limits raised so nothing is
refused), round-robin over 1,000 users so each user's active count stays small,
as it does under jobdesk's default limits. ``enqueue_bulk`` is ``create_jobs``: one
transaction per chunk, the whole chunk one user's (a user's fan-out, say one job per
episode), the limits checked once for the chunk.

Worker (``jobdesk_worker.py``): one process, one asyncio loop; ``claim_jobs(limit=10)``,
then the claimed jobs run concurrently (each calls ``common.record``), then the
next claim. Variants: ``c10`` completes each job with ``complete_job`` (a
transaction each), ``c10_batch`` the whole batch with one ``complete_jobs``. The
bench worker has no cross-process wake-up, so an idle worker polls every 5 ms.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from jobdesk import JobDesk, JobSpec, Limits

DEFAULT_URL = "sqlite:////tmp/jobdesk-bench/jobdesk.db"
URL = os.environ.get("BENCH_JOBDESK_URL", DEFAULT_URL)
JOB_TYPE = "noop"
#: jobs are spread over this many users, round-robin
USERS = 1_000
#: the most jobs one create_jobs call takes
MAX_BATCH = 1_000
#: high enough that no create is refused: the harness measures inserts, not refusals
LIMITS = Limits(max_active_per_user=1_000_000, max_created_per_day=100_000_000)
#: the worker's claim batch, which is also how many jobs it runs at once
BATCH = 10
#: how long an idle worker waits before it polls again
POLL_SECONDS = 0.005
WORKER_SCRIPT = Path(__file__).resolve().with_name("jobdesk_worker.py")


def database_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL."""
    assert url.startswith("sqlite:///"), url
    return Path(url[len("sqlite:///") :].partition("?")[0])


class Adapter:
    """The harness contract for one database URL."""

    def __init__(self, url: str, notes: str) -> None:
        self.url = url
        self.notes = notes

    async def setup(self) -> None:
        """Create the database file and its schema (jobdesk migrates on open)."""
        database_path(self.url).parent.mkdir(parents=True, exist_ok=True)
        async with JobDesk.open(self.url, limits=LIMITS):
            pass

    def reset(self) -> None:
        """Empty every table, as the peers' TRUNCATE + VACUUM does.

        The harness calls this while a producer may hold its connection open, so
        the file stays: the rows go, then VACUUM gives back the pages.
        """
        connection = sqlite3.connect(database_path(self.url), timeout=30, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            for table in ("job_events", "jobs", "users", "tokens"):
                connection.execute(f"DELETE FROM {table}")
            connection.execute("COMMIT")
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()

    def worker_cmds(self, variant: str, python: str) -> list[list[str]]:
        """One worker process, told the database URL and the variant on its command line."""
        if variant not in VARIANTS:
            raise KeyError(variant)
        return [[python, str(WORKER_SCRIPT), self.url, variant]]


class Producer:
    """``create_job`` per enqueue, over one open desk (one SQLite connection)."""

    url = URL

    def __init__(self) -> None:
        self.count = 0
        self.desk: JobDesk | None = None

    async def __aenter__(self) -> Producer:
        self.desk = await JobDesk.open(self.url, limits=LIMITS)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.desk is not None:
            await self.desk.close()

    async def enqueue(self, enq_ts: float) -> None:
        """One job whose input carries its enqueue time."""
        assert self.desk is not None, "use Producer as an async context manager"
        user = f"bench-user-{self.count % USERS:04d}"
        self.count += 1
        await self.desk.create_job(user, JOB_TYPE, {"enq_ts": enq_ts})

    async def enqueue_bulk(self, ts_list: Sequence[float]) -> None:
        """One ``create_jobs`` (one transaction, the limits checked once for the batch)
        per chunk, each chunk one user's: a user's fan-out, the bulk case jobdesk serves."""
        assert self.desk is not None, "use Producer as an async context manager"
        user = f"bench-user-{self.count % USERS:04d}"
        self.count += 1
        for start in range(0, len(ts_list), MAX_BATCH):
            chunk = ts_list[start : start + MAX_BATCH]
            await self.desk.create_jobs(user, [JobSpec(JOB_TYPE, {"enq_ts": ts}) for ts in chunk])


#: c10: complete_job per job; c10_batch: one complete_jobs per claimed batch
VARIANTS = ["c10", "c10_batch", "c10_listen"]
_ADAPTER = Adapter(
    URL,
    "SQLite file, WAL, synchronous from BENCH_JOBDESK_URL (default full); create_job with "
    "limit checks; bulk: create_jobs, one user's chunk per call; worker: 1 process, "
    "claim_jobs(limit=10), then the 10 run concurrently, complete_job each (c10) or one "
    "complete_jobs (c10_batch); "
    "no cross-process notification: idle poll every 5 ms",
)
setup = _ADAPTER.setup
reset = _ADAPTER.reset
worker_cmds = _ADAPTER.worker_cmds
NOTES = _ADAPTER.notes

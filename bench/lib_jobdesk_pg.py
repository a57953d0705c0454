"""jobdesk on PostgreSQL for the peer harness: the same adapter as ``lib_jobdesk``.

The database is ``BENCH_JOBDESK_PG_URL`` (default
``postgresql://root@127.0.0.1:5432/jobdesk_bench``, created if missing), on the
same server and at the same durability (fsync, synchronous_commit on) as the
PostgreSQL peers. The worker is ``jobdesk_worker.py`` (variants as in
``lib_jobdesk``; ``c10_listen`` wakes on LISTEN/NOTIFY; ``c10_overlap`` also completes
a batch while claiming the next) or, for ``runtime_c10``, ``jobdesk.worker``.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg

import lib_jobdesk
from jobdesk import JobDesk

URL = os.environ.get("BENCH_JOBDESK_PG_URL", "postgresql://root@127.0.0.1:5432/jobdesk_bench")


async def setup_database(url: str) -> None:
    """Create the database of ``url`` if needed; jobdesk migrates it on open."""
    parts = urlsplit(url)
    server = urlunsplit(parts._replace(path="/postgres", query=""))
    name = parts.path.lstrip("/")
    with psycopg.connect(server, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            admin.execute(f"CREATE DATABASE {name}")  # a name from our own setting
    async with JobDesk.open(url, limits=lib_jobdesk.LIMITS):
        pass


def reset_database(url: str) -> None:
    """Empty jobdesk's tables, as the peers' adapters TRUNCATE and VACUUM theirs."""
    plain = urlunsplit(urlsplit(url)._replace(query=""))
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE jobdesk.jobs, jobdesk.job_events, jobdesk.users, jobdesk.tokens "
            "RESTART IDENTITY"
        )
        for table in ("jobs", "job_events", "users", "tokens"):
            connection.execute(f"VACUUM ANALYZE jobdesk.{table}")


async def setup() -> None:
    """Create and migrate this adapter's database."""
    await setup_database(URL)


def reset() -> None:
    """Empty this adapter's database."""
    reset_database(URL)


class Producer(lib_jobdesk.Producer):
    """``create_job`` per enqueue, over one open desk on PostgreSQL."""

    url = URL


RUNTIME_SCRIPT = lib_jobdesk.WORKER_SCRIPT.with_name("jobdesk_runtime_worker.py")


def worker_cmds(variant: str, python: str) -> list[list[str]]:
    """One worker process on the PostgreSQL URL: the real runtime, or a bench loop."""
    if variant not in VARIANTS:
        raise KeyError(variant)
    if variant == "runtime_c10":
        return [[python, str(RUNTIME_SCRIPT), URL]]
    return [[python, str(lib_jobdesk.WORKER_SCRIPT), URL, variant]]


VARIANTS = ["runtime_c10", *lib_jobdesk.VARIANTS, "c10_overlap"]
NOTES = (
    "PostgreSQL (same server as the peers); create_job with limit checks, bulk: create_jobs; "
    "worker: 1 process; runtime_c10 is jobdesk.worker (concurrency 10); the others "
    "claim_jobs(limit=10); c10_batch/c10_listen complete the batch in one "
    "transaction; c10_listen waits on LISTEN/NOTIFY when idle; c10_overlap is c10_listen with "
    "each batch's completion committing while the next claim runs"
)

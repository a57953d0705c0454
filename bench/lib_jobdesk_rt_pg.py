"""``jobdesk worker`` processes on PostgreSQL for the peer harness (see ``runtime_adapter``).

The database is ``BENCH_JOBDESK_RT_PG_URL`` (default
``postgresql://root@127.0.0.1:5432/jobdesk_bench_rt``, created if missing), on the
same server and at the same durability as the PostgreSQL peers.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg

import lib_jobdesk
import runtime_adapter
from jobdesk import JobDesk

URL = os.environ.get("BENCH_JOBDESK_RT_PG_URL", "postgresql://root@127.0.0.1:5432/jobdesk_bench_rt")
VARIANTS = runtime_adapter.VARIANTS
NOTES = (
    "PostgreSQL (same server as the peers); create_job with limit checks; workers: the real "
    "`jobdesk worker --concurrency 10` CLI, 1 or 2 processes on the database (x1, x2), or "
    "`jobdesk serve` + remote workers over HTTP (http_x1, http_x2)"
)


async def setup() -> None:
    """Create the database if needed; jobdesk migrates it on open."""
    parts = urlsplit(URL)
    server = urlunsplit(parts._replace(path="/postgres", query=""))
    name = parts.path.lstrip("/")
    with psycopg.connect(server, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            admin.execute(f"CREATE DATABASE {name}")  # a name from our own setting
    async with JobDesk.open(URL, limits=lib_jobdesk.LIMITS):
        pass


def reset() -> None:
    """Empty jobdesk's tables, as the peers' adapters TRUNCATE and VACUUM theirs."""
    plain = urlunsplit(urlsplit(URL)._replace(query=""))
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE jobdesk.jobs, jobdesk.job_events, jobdesk.users, jobdesk.tokens "
            "RESTART IDENTITY"
        )
        for table in ("jobs", "job_events", "users", "tokens"):
            connection.execute(f"VACUUM ANALYZE jobdesk.{table}")


class Producer(lib_jobdesk.Producer):
    """``create_job`` per enqueue, over one open desk on PostgreSQL."""

    url = URL


def worker_cmds(variant: str, python: str) -> list[list[str]]:
    """The variant's processes (see ``runtime_adapter``)."""
    return runtime_adapter.worker_cmds(URL, variant, python)

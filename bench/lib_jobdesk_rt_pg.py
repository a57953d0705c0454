"""``jobdesk worker`` processes on PostgreSQL for the peer harness (see ``runtime_adapter``).

The database is ``BENCH_JOBDESK_RT_PG_URL`` (default
``postgresql://root@127.0.0.1:5432/jobdesk_bench_rt``, created if missing), on the
same server and at the same durability as the PostgreSQL peers.
"""

from __future__ import annotations

import os

import lib_jobdesk
import lib_jobdesk_pg
import runtime_adapter

URL = os.environ.get("BENCH_JOBDESK_RT_PG_URL", "postgresql://root@127.0.0.1:5432/jobdesk_bench_rt")
VARIANTS = runtime_adapter.VARIANTS
NOTES = (
    "PostgreSQL (same server as the peers); create_job with limit checks (bulk: "
    "create_jobs); workers: the real "
    "`jobdesk worker --concurrency 10` CLI, 1 or 2 processes on the database (x1, x2), or "
    "`jobdesk serve` + remote workers over HTTP (http_x1, http_x2)"
)


async def setup() -> None:
    """Create and migrate this adapter's database."""
    await lib_jobdesk_pg.setup_database(URL)


def reset() -> None:
    """Empty this adapter's database."""
    lib_jobdesk_pg.reset_database(URL)


class Producer(lib_jobdesk.Producer):
    """``create_job`` per enqueue, over one open desk on PostgreSQL."""

    url = URL


def worker_cmds(variant: str, python: str) -> list[list[str]]:
    """The variant's processes (see ``runtime_adapter``)."""
    return runtime_adapter.worker_cmds(URL, variant, python)

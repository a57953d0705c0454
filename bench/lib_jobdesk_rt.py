"""``jobdesk worker`` processes on SQLite for the peer harness (see ``runtime_adapter``).

The database is ``BENCH_JOBDESK_RT_URL`` (default
``sqlite:////tmp/jobdesk-bench/runtime.db``, synchronous=full).
"""

from __future__ import annotations

import os

import lib_jobdesk
import runtime_adapter

URL = os.environ.get("BENCH_JOBDESK_RT_URL", "sqlite:////tmp/jobdesk-bench/runtime.db")
_ADAPTER = lib_jobdesk.Adapter(URL, "")
setup = _ADAPTER.setup
reset = _ADAPTER.reset
VARIANTS = runtime_adapter.VARIANTS
NOTES = (
    "SQLite file (synchronous=full); create_job with limit checks (bulk: create_jobs); "
    "workers: the real "
    "`jobdesk worker --concurrency 10` CLI, 1 or 2 processes on the file (x1, x2), or "
    "`jobdesk serve` + remote workers over HTTP (http_x1, http_x2)"
)


class Producer(lib_jobdesk.Producer):
    """``create_job`` per enqueue, over one open desk."""

    url = URL


def worker_cmds(variant: str, python: str) -> list[list[str]]:
    """The variant's processes (see ``runtime_adapter``)."""
    return runtime_adapter.worker_cmds(URL, variant, python)

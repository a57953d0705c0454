"""jobdesk's real worker runtime for the peer harness: ``jobdesk_runtime_worker.py URL``.

``jobdesk.worker.WorkerRuntime`` with concurrency 10 and one no-op handler that records
its start (``common.record``), exactly what ``jobdesk worker --app ... --concurrency
10`` runs: it claims up to its free slots per call, wakes on change notifications
(LISTEN/NOTIFY on PostgreSQL) and groups completions that finish together into one
commit. Stops on SIGTERM or SIGINT.

Its ``registry`` is also the ``--app`` of the ``jobdesk worker`` processes of the
``x1``, ``x2``, ``http_x1`` and ``http_x2`` variants (see ``jobdesk_adapter``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from jobdesk_adapter import CONCURRENCY, JOB_TYPE, LIMITS, record

from jobdesk import JobDesk
from jobdesk.worker import DeskTransport, JobContext, Registry, WorkerRuntime

registry = Registry()


@registry.handler(JOB_TYPE)
async def noop(ctx: JobContext, input: dict[str, Any]) -> None:  # noqa: A002 - the contract's name
    """The no-op every library runs: record when it started."""
    record(float(input.get("enq_ts", 0.0)))


async def main(url: str) -> None:
    """Run the runtime until a signal stops it."""
    async with JobDesk.open(url, limits=LIMITS) as desk:
        token = await desk.create_worker_token(f"bench-runtime-{os.getpid()}")
        transport = await DeskTransport.connect(desk, token)
        worker = WorkerRuntime(registry, transport, concurrency=CONCURRENCY)
        await worker.run(handle_signals=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2)
    asyncio.run(main(sys.argv[1]))

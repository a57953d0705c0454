"""jobdesk's real worker runtime for the peer harness: ``jobdesk_runtime_worker.py URL``.

``jobdesk.worker.WorkerRuntime`` with concurrency 10 and one no-op handler that records
its start (``common.record``), exactly what ``jobdesk worker --app ... --concurrency
10`` runs: it claims up to its free slots per call, wakes on change notifications
(LISTEN/NOTIFY on PostgreSQL) and groups completions that finish together into one
commit. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, cast

from jobdesk import JobDesk
from jobdesk.worker import DeskTransport, JobContext, Registry, WorkerRuntime
from lib_jobdesk import JOB_TYPE, LIMITS

record = cast(Callable[[float], None], importlib.import_module("common").record)
registry = Registry()


@registry.handler(JOB_TYPE)
async def noop(ctx: JobContext, input: dict[str, Any]) -> None:  # noqa: A002 - the contract's name
    """The no-op every library runs: record when it started."""
    record(float(input.get("enq_ts", 0.0)))


async def main(url: str) -> None:
    """Run the runtime until a signal stops it."""
    async with JobDesk.open(url, limits=LIMITS) as desk:
        token = await desk.create_worker_token(f"bench-runtime-{os.getpid()}")
        worker = WorkerRuntime(registry, await DeskTransport.connect(desk, token), concurrency=10)
        await worker.run(handle_signals=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

"""Helpers shared by the integration tests: jobs in a chosen status, and threads.

Everything here goes through the public ``JobDesk`` API (async, or the sync facade),
so it works on every store that ``store_url`` names.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from jobdesk import Job, JobDesk, JobStatus, Worker
from jobdesk.errors import JobdeskError
from jobdesk.store.postgres import migrations
from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.testing import ManualClock

T = TypeVar("T")

#: a well-formed job id that no desk ever issued
MISSING_ID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"

#: how long a barrier waits for its threads before the test fails (not a sleep)
BARRIER_SECONDS = 60.0


async def job_in_status(
    desk: JobDesk,
    worker: Worker,
    user_id: str,
    status: JobStatus,
    *,
    job_type: str = "demo",
    project_id: str | None = None,
) -> Job:
    """A new job of ``user_id`` brought to ``status`` by the ordinary operations."""
    job = await desk.create_job(user_id, job_type, {"for": status.value}, project_id)
    if status is JobStatus.PENDING:
        return job
    if status is JobStatus.CANCELLED:
        return await desk.cancel_job(job.id, user_id)
    started = await desk.start_job(worker, job.id)
    if status is JobStatus.PROCESSING:
        return started
    if status is JobStatus.COMPLETED:
        return await desk.complete_job(worker, job.id, {"ok": True}, attempt=started.attempt)
    assert status is JobStatus.FAILED
    return await desk.fail_job(worker, job.id, "gave up", retryable=False, attempt=started.attempt)


def run_in_threads(
    store_url: str,
    clock: ManualClock,
    count: int,
    action: Callable[[SyncJobDesk, int], T],
) -> list[T | JobdeskError]:
    """Run ``action(desk, index)`` in ``count`` threads at once, each with its own sync desk.

    The threads open their desks first and then start together at a barrier, so the
    actions overlap as much as the store allows. A jobdesk error is returned, not raised,
    so a test can count refusals; anything else fails the test.
    """
    barrier = threading.Barrier(count, timeout=BARRIER_SECONDS)

    def run(index: int) -> T | JobdeskError:
        with SyncJobDesk.open(store_url, clock=clock) as desk:
            barrier.wait()
            try:
                return action(desk, index)
            except JobdeskError as exc:
                return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def function_definition(name: str) -> tuple[str, str]:
    """The newest PostgreSQL migration's definition of function ``name``: the comment block
    just before it, and its ``CREATE [OR REPLACE] FUNCTION`` statement made a ``CREATE OR
    REPLACE`` (so that a mutated copy can be applied over the real one)."""
    heading = re.compile(rf"^CREATE (?:OR REPLACE )?FUNCTION {re.escape(name)}\(", re.MULTILINE)
    for _, script in reversed(migrations()):
        found = heading.search(script)
        if found is None:
            continue
        start = found.start()
        end = script.index("\n$$;", start) + len("\n$$;")
        header = script[script.rindex("\n\n", 0, start) : start]
        statement = script[start:end]
        if not statement.startswith("CREATE OR REPLACE"):
            statement = statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        return header, statement
    raise LookupError(f"no migration defines {name}")

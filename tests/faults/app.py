"""The fault experiment's handlers: ``--app tests.faults.app:registry``.

Each handler records its execution (job id, attempt, worker, start time) with one
``O_APPEND`` write to ``$FAULTS_EXECUTIONS`` before it works, and returns its
attempt and worker: the checker compares that with the job's last attempt to
catch a stale write.

``fault_job`` sleeps for ``input["seconds"]`` (tens of milliseconds), reporting
progress half way, and fails its first attempt when ``input["fail_first"]``.

``slow_job`` is the one a paused worker is chosen for, so that fencing is what
decides its result. Its first attempt takes :data:`FIRST_ATTEMPT_SECONDS`, any
later one :data:`LATER_ATTEMPT_SECONDS`, longer. The nemesis stops a worker in
the middle of a first attempt and lets it go once another worker has taken the
job over under attempt 2. The paused handler's sleep ran on through the pause
(the monotonic clock does not stop with the process), so it finishes moments
after it resumes, seconds before the live replacement. Without fencing its
completion, from an attempt that was replaced, is stored: the checker sees a
stale result. With fencing it is refused (its first heartbeat is refused too),
and the replacement's result is the one kept. With attempts of equal length the
replacement would often finish first and the state machine alone would refuse
the stale write, hiding a fencing regression.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jobdesk.worker import JobContext, Registry

registry = Registry()
JOB_TYPE = "fault_job"
SLOW_TYPE = "slow_job"
#: a slow job's first attempt: shorter than a pause (lease and takeover), see above
FIRST_ATTEMPT_SECONDS = 1.5
#: any later attempt: long enough for a resumed first attempt to finish before it
LATER_ATTEMPT_SECONDS = 4.0
_handle: int | None = None


def record(job_id: str, attempt: int) -> None:
    """Append ``job_id attempt worker started`` to the executions file, in one write."""
    global _handle  # noqa: PLW0603 - one file per process, opened on first use
    if _handle is None:
        _handle = os.open(
            os.environ["FAULTS_EXECUTIONS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
        )
    worker = os.environ.get("FAULTS_WORKER", "?")
    os.write(_handle, f"{job_id} {attempt} {worker} {time.time():.6f}\n".encode())


def _result(ctx: JobContext) -> dict[str, Any]:
    return {"attempt": ctx.job.attempt, "worker": os.environ.get("FAULTS_WORKER", "?")}


@registry.handler(JOB_TYPE)
async def fault_job(ctx: JobContext, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
    """Record, work a little (reporting progress), maybe fail once, return who did it."""
    record(ctx.job.id, ctx.job.attempt)
    seconds = float(input.get("seconds", 0.05))
    await asyncio.sleep(seconds / 2)
    await ctx.progress(50, "half way")
    await asyncio.sleep(seconds / 2)
    if input.get("fail_first") and ctx.job.attempt - ctx.job.attempt_offset == 1:
        raise RuntimeError("a simulated failure of the first attempt")
    return _result(ctx)


@registry.handler(SLOW_TYPE)
async def slow_job(ctx: JobContext, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
    """Record, work for seconds (longer after the first attempt), return who did it."""
    record(ctx.job.id, ctx.job.attempt)
    seconds = FIRST_ATTEMPT_SECONDS if ctx.job.attempt == 1 else LATER_ATTEMPT_SECONDS
    await asyncio.sleep(seconds / 2)
    await ctx.progress(50, "half way")
    await asyncio.sleep(seconds / 2)
    return _result(ctx)

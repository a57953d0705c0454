"""The fault experiment's handlers: ``--app tests.faults.app:registry``.

``fault_job`` records each execution (job id, attempt, worker) with one
``O_APPEND`` write to ``$FAULTS_EXECUTIONS`` before it works, sleeps for
``input["seconds"]``, fails its first attempt when ``input["fail_first"]``, and
returns its attempt and worker: the checker compares that with the job's last
attempt to catch a stale write.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jobdesk.worker import JobContext, Registry

registry = Registry()
JOB_TYPE = "fault_job"
_handle: int | None = None


def record(job_id: str, attempt: int) -> None:
    """Append ``job_id attempt worker`` to the executions file, in one write."""
    global _handle  # noqa: PLW0603 - one file per process, opened on first use
    if _handle is None:
        _handle = os.open(
            os.environ["FAULTS_EXECUTIONS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
        )
    worker = os.environ.get("FAULTS_WORKER", "?")
    os.write(_handle, f"{job_id} {attempt} {worker}\n".encode())


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
    return {"attempt": ctx.job.attempt, "worker": os.environ.get("FAULTS_WORKER", "?")}

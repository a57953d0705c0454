"""Jobs in every status, built with the lifecycle functions themselves: no store, no clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from jobdesk import lifecycle
from jobdesk.limits import Limits
from jobdesk.models import Job, JobStatus, NewJob, Worker

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
JOB_ID = "01JNQ0000000000000000000AB"
LIMITS = Limits()
LEASE_SECONDS = LIMITS.lease_seconds
WORKER = Worker("worker-1")
OTHER_WORKER = Worker("worker-2")
ERROR: dict[str, Any] = {"message": "the GPU ran out of memory", "code": "oom"}


def new_job(**changes: Any) -> NewJob:
    """A validated request for a ``character_extraction`` job of ``user-1``."""
    spec = NewJob(
        id=JOB_ID,
        user_id="user-1",
        type="character_extraction",
        input={"episode_ids": ["ep-1"]},
        input_json='{"episode_ids":["ep-1"]}',
        max_attempts=LIMITS.max_attempts,
    )
    return dataclasses.replace(spec, **changes)


def pending_job(**changes: Any) -> Job:
    """A job just created at :data:`NOW`."""
    return dataclasses.replace(lifecycle.create(new_job(), NOW), **changes)


def processing_job(**changes: Any) -> Job:
    """A job that :data:`WORKER` started at :data:`NOW` (attempt 1)."""
    job = lifecycle.start(pending_job(), NOW, worker=WORKER, lease_seconds=LEASE_SECONDS)
    return dataclasses.replace(job, **changes)


def job_in(status: JobStatus) -> Job:
    """A job that reached ``status`` the ordinary way."""
    if status is JobStatus.PENDING:
        return pending_job()
    running = processing_job()
    if status is JobStatus.PROCESSING:
        return running
    if status is JobStatus.COMPLETED:
        return lifecycle.complete(running, NOW, worker=WORKER, attempt=1, result={"ok": True})
    if status is JobStatus.FAILED:
        return lifecycle.fail(
            running, NOW, worker=WORKER, attempt=1, error=ERROR, retryable=False, limits=LIMITS
        )
    return lifecycle.cancel(running, NOW)

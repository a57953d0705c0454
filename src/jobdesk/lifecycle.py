"""What each operation does to a job: pure functions from a job to its next state.

Stores run these inside the transaction that holds the job's row, so the rules
live here once and hold on every store. Every status change goes through
:func:`jobdesk.models.next_status`.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta

from jobdesk.errors import InvalidInput, InvalidTransition, JobNotFound, LeaseLost
from jobdesk.limits import Limits, retry_backoff
from jobdesk.models import Action, Job, JobStatus, JSONValue, NewJob, Worker, next_status

LEASE_EXPIRED_ERROR: dict[str, JSONValue] = {
    "message": "the worker stopped reporting and its lease expired",
    "code": "lease_expired",
}


def create(spec: NewJob, now: datetime) -> Job:
    """A new ``pending`` job from a validated request, stamped with the store's time."""
    return Job(
        id=spec.id,
        user_id=spec.user_id,
        project_id=spec.project_id,
        type=spec.type,
        status=JobStatus.PENDING,
        input=spec.input,
        priority=spec.priority,
        max_attempts=spec.max_attempts,
        idempotency_key=spec.idempotency_key,
        traceparent=spec.traceparent,
        created_at=now,
        run_at=spec.run_at or now,
        updated_at=now,
    )


def replay(existing: Job, spec: NewJob) -> Job:
    """The job an idempotent replay returns; a different request under the same key is refused."""
    same = (
        existing.type == spec.type
        and existing.project_id == spec.project_id
        and existing.priority == spec.priority
        and existing.max_attempts == spec.max_attempts
        and _canonical(existing.input) == _canonical(spec.input)
    )
    if not same:
        raise InvalidInput("idempotency_key", "was already used for a different job; use a new key")
    return existing


def _canonical(document: JSONValue) -> str:
    # Python finds 1 == 1.0 == True; JSON, and the worker reading the input, does not.
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def start(job: Job, now: datetime, *, worker: Worker, lease_seconds: float) -> Job:
    """``pending`` -> ``processing`` for ``worker``: a new attempt under a new lease."""
    if not worker.may_handle(job.type):
        raise JobNotFound(job.id)
    status = next_status(job.id, job.status, Action.START)
    if job.run_at > now:
        raise InvalidTransition(
            job.id, job.status.value, Action.START.value, f"not due until {job.run_at.isoformat()}"
        )
    return dataclasses.replace(
        job,
        status=status,
        attempt=job.attempt + 1,
        worker_id=worker.name,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        progress=0.0,
        progress_message=None,
        cancel_requested=False,
        error=None,
        updated_at=now,
    )


def cancel(job: Job, now: datetime) -> Job:
    """The user cancels: at once, freeing the active slot; a running worker is told."""
    if job.status is JobStatus.CANCELLED:
        return job
    status = next_status(job.id, job.status, Action.CANCEL)
    return dataclasses.replace(
        job,
        status=status,
        cancel_requested=job.status is JobStatus.PROCESSING,
        lease_expires_at=None,
        finished_at=now,
        updated_at=now,
    )


def retry(job: Job, now: datetime) -> Job:
    """The user revives a failed or cancelled job with a fresh budget of attempts."""
    status = next_status(job.id, job.status, Action.RETRY)
    return dataclasses.replace(
        job,
        status=status,
        attempt_offset=job.attempt,
        run_at=now,
        finished_at=None,
        worker_id=None,
        lease_expires_at=None,
        cancel_requested=False,
        progress=0.0,
        progress_message=None,
        result=None,
        error=None,
        updated_at=now,
    )


def hold(job: Job, worker: Worker, attempt: int, now: datetime) -> None:
    """Check that ``worker`` still holds ``job`` under ``attempt``, else :class:`LeaseLost`."""
    if not worker.may_handle(job.type):
        raise JobNotFound(job.id)
    if job.worker_id != worker.name:
        raise LeaseLost(job.id, "the job is not held by this worker")
    if job.attempt != attempt:
        raise LeaseLost(job.id, f"attempt {attempt} is not the job's current attempt {job.attempt}")
    if job.status is JobStatus.CANCELLED:
        raise LeaseLost(job.id, "the job was cancelled")
    if job.status is not JobStatus.PROCESSING:
        raise LeaseLost(job.id, f"the job is {job.status.value}")
    if job.lease_expires_at is None or job.lease_expires_at <= now:
        raise LeaseLost(job.id, "the lease expired")


def was_cancelled_under(job: Job, worker: Worker, attempt: int) -> bool:
    """Whether the user cancelled ``job`` while ``worker`` held it under ``attempt``."""
    return (
        job.status is JobStatus.CANCELLED
        and job.cancel_requested
        and job.worker_id == worker.name
        and job.attempt == attempt
    )


def report_progress(
    job: Job,
    now: datetime,
    *,
    worker: Worker,
    attempt: int,
    lease_seconds: float,
    progress: float | None,
    message: str | None,
) -> Job:
    """Progress or heartbeat: renew the lease (and record progress when given).

    On a job cancelled under this attempt the job is returned unchanged: the
    caller answers ``cancel_requested=True`` and writes nothing.
    """
    if was_cancelled_under(job, worker, attempt):
        return job
    hold(job, worker, attempt, now)
    lease_expires_at = now + timedelta(seconds=lease_seconds)
    if progress is None:
        return dataclasses.replace(job, lease_expires_at=lease_expires_at, updated_at=now)
    return dataclasses.replace(
        job,
        progress=progress,
        progress_message=message,
        lease_expires_at=lease_expires_at,
        updated_at=now,
    )


def complete(job: Job, now: datetime, *, worker: Worker, attempt: int, result: JSONValue) -> Job:
    """``processing`` -> ``completed`` with the result."""
    hold(job, worker, attempt, now)
    return dataclasses.replace(
        job,
        status=next_status(job.id, job.status, Action.COMPLETE),
        result=result,
        error=None,
        progress=100.0,
        lease_expires_at=None,
        finished_at=now,
        updated_at=now,
    )


def fail(
    job: Job,
    now: datetime,
    *,
    worker: Worker,
    attempt: int,
    error: dict[str, JSONValue],
    retryable: bool,
    limits: Limits,
    retry_after: float | None = None,
) -> Job:
    """Back to ``pending`` after a backoff while attempts remain, else ``failed``.

    ``retry_after`` (seconds) replaces the backoff when the worker asked for a delay.
    """
    hold(job, worker, attempt, now)
    return _give_up_or_requeue(job, now, error, retryable, limits, retry_after)


def release(job: Job, now: datetime, *, worker: Worker, attempt: int) -> Job:
    """The worker hands the job back unfinished (it is shutting down): ``pending`` at once.

    The attempt is not spent: ``attempt_offset`` moves up with it, so the job
    keeps its budget. ``attempt`` itself still never repeats.
    """
    hold(job, worker, attempt, now)
    return dataclasses.replace(
        job,
        status=next_status(job.id, job.status, Action.REQUEUE),
        attempt_offset=job.attempt_offset + 1,
        run_at=now,
        worker_id=None,
        lease_expires_at=None,
        updated_at=now,
    )


def snooze(job: Job, now: datetime, *, worker: Worker, attempt: int, delay: float) -> Job:
    """The worker cannot run the job now ("not now"): ``pending`` again after ``delay``
    seconds, without spending the attempt (as :func:`release`, but later)."""
    hold(job, worker, attempt, now)
    return dataclasses.replace(
        job,
        status=next_status(job.id, job.status, Action.REQUEUE),
        attempt_offset=job.attempt_offset + 1,
        run_at=now + timedelta(seconds=delay),
        worker_id=None,
        lease_expires_at=None,
        updated_at=now,
    )


def expire(job: Job, now: datetime, *, limits: Limits) -> Job:
    """A lease ran out: the attempt is spent; back to the queue after a backoff, or ``failed``."""
    if job.status is not JobStatus.PROCESSING or job.lease_expires_at is None:
        return job
    if job.lease_expires_at > now:
        return job
    return _give_up_or_requeue(job, now, LEASE_EXPIRED_ERROR, True, limits, None)


def _give_up_or_requeue(  # noqa: PLR0917 - private; every caller passes all six
    job: Job,
    now: datetime,
    error: dict[str, JSONValue],
    retryable: bool,
    limits: Limits,
    delay: float | None,
) -> Job:
    if retryable and job.attempts_left > 0:
        if delay is None:
            delay = retry_backoff(limits, job.attempt - job.attempt_offset)
        return dataclasses.replace(
            job,
            status=next_status(job.id, job.status, Action.REQUEUE),
            error=error,
            run_at=now + timedelta(seconds=delay),
            worker_id=None,
            lease_expires_at=None,
            updated_at=now,
        )
    return dataclasses.replace(
        job,
        status=next_status(job.id, job.status, Action.FAIL),
        error=error,
        lease_expires_at=None,
        finished_at=now,
        updated_at=now,
    )

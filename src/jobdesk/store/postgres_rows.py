"""Rows and models on PostgreSQL: the one place a row becomes a job, and the reverse.

A row read becomes a :class:`~jobdesk.models.Job` (or a token record) here; the
changes decided on those jobs become the JSON parameters of ``write_jobs`` here;
and the numbers ``jobdesk.create_job`` judged a create by are checked against
:mod:`jobdesk.limits` here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from jobdesk.errors import JobdeskError, JobNotFound, RateLimited
from jobdesk.limits import Limits, check_active, check_daily
from jobdesk.models import Job, JobStatus, TokenRecord, UserLimits
from jobdesk.store import Change
from jobdesk.store.common import FAILURE_STATUSES

__all__ = [
    "NeedsLock",
    "Row",
    "decide",
    "job_from_row",
    "judge_limits",
    "needs_the_locked_path",
    "time_text",
    "token_from_row",
    "types_param",
    "write_params",
]

Row = dict[str, Any]


def job_from_row(row: Row) -> Job:
    """The one place a row becomes a :class:`Job`."""
    return Job(
        id=row["id"],
        user_id=row["user_id"],
        project_id=row["project_id"],
        type=row["type"],
        status=JobStatus(row["status"]),
        input=row["input"],
        result=row["result"],
        error=row["error"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        priority=row["priority"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        attempt_offset=row["attempt_offset"],
        created_at=row["created_at"],
        run_at=row["run_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        worker_id=row["worker_id"],
        lease_expires_at=row["lease_expires_at"],
        cancel_requested=row["cancel_requested"],
        idempotency_key=row["idempotency_key"],
    )


def token_from_row(row: Row) -> TokenRecord:
    """The one place a token row becomes a :class:`TokenRecord`."""
    return TokenRecord(
        key_id=row["key_id"],
        kind=row["kind"],
        subject=row["subject"],
        secret_hash=bytes(row["secret_hash"]),
        types=None if row["types"] is None else frozenset(row["types"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def types_param(types: frozenset[str] | None) -> list[str] | None:
    """A set of job types as a query parameter: sorted, or None for any type."""
    return None if types is None else sorted(types)


def time_text(value: datetime | None) -> str | None:
    """A time as it travels inside a JSON parameter."""
    return None if value is None else value.isoformat()


class NeedsLock(Exception):
    """An optimistic update met a change that must run under the user's row lock."""


async def needs_the_locked_path(job: Job) -> None:
    """The ``admit`` of an optimistic update: any job that becomes active again needs the lock."""
    raise NeedsLock(job.id)


async def decide(
    changes: Sequence[tuple[str, Change]],
    rows: Sequence[Row],
    admit: Callable[[Job], Awaitable[None]],
) -> tuple[list[Job | JobdeskError], list[Job], list[Job]]:
    """Apply each change, in order, to the jobs of ``rows``: every outcome, the jobs to
    write and their status changes (history). ``admit`` checks a job that becomes active
    again against its user's active limit."""
    current = {row["id"]: job_from_row(row) for row in rows}
    now: datetime | None = rows[0]["store_now"] if rows else None
    outcomes: list[Job | JobdeskError] = []
    written: dict[str, Job] = {}
    events: list[Job] = []
    for job_id, change in changes:
        before = current.get(job_id)
        try:
            if before is None or now is None:
                raise JobNotFound(job_id)
            after = change(before, now)
            if after is not before and after.status.is_active and not before.status.is_active:
                await admit(before)
        except JobdeskError as refusal:
            outcomes.append(refusal)
            continue
        outcomes.append(after)
        if after is not before:
            current[job_id] = written[job_id] = after
            if after.status is not before.status:
                events.append(after)
    return outcomes, list(written.values()), events


def write_params(
    written: Sequence[Job], events: Sequence[Job], versions: dict[str, str]
) -> dict[str, Any]:
    """``write_jobs``'s parameters: the jobs' new states, each with the version (xmin) of
    the row it was decided from, and their history entries, as JSON."""
    jobs = [
        {
            "id": job.id,
            "version": versions[job.id],
            "status": job.status.value,
            "result": job.result,
            "error": job.error,
            "progress": job.progress,
            "progress_message": job.progress_message,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "attempt_offset": job.attempt_offset,
            "run_at": time_text(job.run_at),
            "started_at": time_text(job.started_at),
            "finished_at": time_text(job.finished_at),
            "updated_at": time_text(job.updated_at),
            "worker_id": job.worker_id,
            "lease_expires_at": time_text(job.lease_expires_at),
            "cancel_requested": job.cancel_requested,
        }
        for job in written
    ]
    history = [
        {
            "job_id": job.id,
            "at": time_text(job.updated_at),
            "status": job.status.value,
            "attempt": job.attempt,
            "worker_id": job.worker_id,
            "error": job.error if job.status in FAILURE_STATUSES else None,
        }
        for job in events
    ]
    return {
        "ids": [job.id for job in written],
        "jobs": json.dumps(jobs),
        "events": json.dumps(history),
    }


def judge_limits(row: Row, limits: Limits) -> None:
    """Raise the refusal :mod:`jobdesk.limits` makes of the numbers ``jobdesk.create_job``
    judged by; if the function decided otherwise, the two copies of the rule have drifted."""
    active_limit, daily_limit = limits.for_user(UserLimits(row["max_active"], row["max_daily"]))
    try:
        check_daily(row["created_today"], daily_limit, row["store_now"])
        check_active(row["active"], active_limit)
    except RateLimited:
        if not row["created"]:
            raise
        allowed = False
    else:
        allowed = True
    if allowed != row["created"]:
        raise RuntimeError(
            "jobdesk.create_job (PostgreSQL migration 0004) and jobdesk.limits disagree on "
            f"a create with {dict(row)}: bring the function in line with jobdesk.limits"
        )

"""Rows and models on PostgreSQL: the one place a row becomes a job, and the reverse.

A row read becomes a :class:`~jobdesk.models.Job` (or a token record) here; the
changes decided on those jobs become the JSON parameters of ``write_jobs`` here;
and the numbers ``jobdesk.create_job`` judged a create by are judged again by
:mod:`jobdesk.limits` here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from jobdesk.errors import JobdeskError, JobNotFound, RateLimited
from jobdesk.limits import Limits, check_daily, check_waiting
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
    "pending_moves",
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
        traceparent=row.get("traceparent"),
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


Admit = Callable[[Job, Job], Awaitable[None]]
"""Judges one change of a job (before, after) by its user's and its type's limits, and
counts it; raises the refusal."""


def needs_admission(before: Job, after: Job) -> bool:
    """Whether a change must be admitted under its user's row lock: a retry (finished ->
    pending: the daily and waiting limits) or a start (pending -> processing: the running
    cap and the type's gate)."""
    retried = after.status is JobStatus.PENDING and before.status.is_finished
    started = after.status is JobStatus.PROCESSING and before.status is JobStatus.PENDING
    return retried or started


async def needs_the_locked_path(before: Job, after: Job) -> None:
    """The ``admit`` of an optimistic update: a retry or a start needs the locked path."""
    if needs_admission(before, after):
        raise NeedsLock(before.id)


async def decide(
    changes: Sequence[tuple[str, Change]],
    rows: Sequence[Row],
    admit: Admit,
) -> tuple[list[Job | JobdeskError], list[Job], list[Job]]:
    """Apply each change, in order, to the jobs of ``rows``: every outcome, the jobs to
    write and their status changes (history). ``admit`` judges and counts every change
    that alters a job's status."""
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
            if after.status is not before.status:
                await admit(before, after)
        except JobdeskError as refusal:
            outcomes.append(refusal)
            continue
        outcomes.append(after)
        if after is not before:
            current[job_id] = written[job_id] = after
            if after.status is not before.status:
                events.append(after)
    return outcomes, list(written.values()), events


def pending_moves(rows: Sequence[Row], written: Sequence[Job]) -> dict[str, int]:
    """How many jobs each user has pending after ``written`` more than before (the rows):
    what the optimistic path adds to ``users.waiting``; users with no change left out."""
    before = {row["id"]: row["status"] == JobStatus.PENDING.value for row in rows}
    moves: dict[str, int] = {}
    for job in written:
        move = int(job.status is JobStatus.PENDING) - int(before[job.id])
        if move:
            moves[job.user_id] = moves.get(job.user_id, 0) + move
    return {user_id: move for user_id, move in moves.items() if move}


def write_params(
    written: Sequence[Job],
    events: Sequence[Job],
    versions: dict[str, str],
    users: Sequence[dict[str, Any]] = (),
    types: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """``write_jobs``'s parameters: the jobs' new states, each with the version (xmin) of
    the row it was decided from, and their history entries, as JSON; with the users'
    changes (``user_id``, ``waiting``: the move of their count, and, decided under their
    lock, ``vtime``, ``usage_day``, ``created_on_day``) and the types' next start times."""
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
        "users": json.dumps(sorted(users, key=lambda user: str(user["user_id"]))),
        "types": json.dumps(list(types)),
    }


def judge_limits(row: Row, limits: Limits) -> None:
    """Raise the refusal :mod:`jobdesk.limits` makes of the numbers ``jobdesk.create_job``
    judged by (the daily limit first, then the waiting one); if the function decided
    otherwise, the two copies of the rule have drifted."""
    effective = limits.for_user(
        UserLimits(max_waiting=row["max_waiting"], max_daily=row["max_daily"])
    )
    refusal: RateLimited | None = None
    try:
        check_daily(row["created_today"], effective.max_daily, row["store_now"])
        check_waiting(row["waiting"], effective.max_waiting)
    except RateLimited as raised:
        refusal = raised
    if (refusal is None) != row["created"]:
        raise AssertionError(
            f"jobdesk.create_job (PostgreSQL migration 0007) decided created={row['created']}"
            f" but jobdesk.limits decided {'created' if refusal is None else repr(refusal)}"
            f" from {dict(row)}: bring the function in line with jobdesk.limits"
        )
    if refusal is not None:
        raise refusal

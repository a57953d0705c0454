"""Rows and models on SQLite: the one place a row becomes a job, and the reverse.

Times are stored as UTC ISO 8601 text and JSON as text; the conversions both
ways live here, with the parameters that write a job and its history.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from jobdesk.models import Job, JobStatus, TokenRecord
from jobdesk.store.common import FAILURE_STATUSES

__all__ = [
    "event_params",
    "job_from_row",
    "job_params",
    "json_text",
    "json_value",
    "parse_time",
    "time_text",
    "token_from_row",
    "types_param",
]


def time_text(value: datetime | None) -> str | None:
    """A time as SQLite stores it: UTC ISO 8601 to the microsecond, so text order is time order."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: str | None) -> datetime | None:
    """A stored time back as a datetime."""
    return None if text is None else datetime.fromisoformat(text)


def json_text(value: Any) -> str | None:
    """A JSON value as stored text, compact."""
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_value(text: str | None) -> Any:
    """Stored JSON text back as a value."""
    return None if text is None else json.loads(text)


def types_param(types: frozenset[str] | None) -> str | None:
    """A set of job types as a query parameter: a sorted JSON array, or None for any type."""
    return None if types is None else json.dumps(sorted(types))


def job_from_row(row: sqlite3.Row) -> Job:
    """The one place a row becomes a :class:`Job`."""
    return Job(
        id=row["id"],
        user_id=row["user_id"],
        project_id=row["project_id"],
        type=row["type"],
        status=JobStatus(row["status"]),
        input=json.loads(row["input"]),
        result=json_value(row["result"]),
        error=json_value(row["error"]),
        progress=row["progress"],
        progress_message=row["progress_message"],
        priority=row["priority"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        attempt_offset=row["attempt_offset"],
        created_at=datetime.fromisoformat(row["created_at"]),
        run_at=datetime.fromisoformat(row["run_at"]),
        started_at=parse_time(row["started_at"]),
        finished_at=parse_time(row["finished_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        worker_id=row["worker_id"],
        lease_expires_at=parse_time(row["lease_expires_at"]),
        cancel_requested=bool(row["cancel_requested"]),
        idempotency_key=row["idempotency_key"],
        # Read by every query that selects whole rows; older partial selects lack it.
        traceparent=row["traceparent"] if "traceparent" in row.keys() else None,  # noqa: SIM118 - sqlite3.Row has no __contains__ for names
    )


def job_params(job: Job) -> dict[str, Any]:
    """The parameters that write a job's new state."""
    return {
        "id": job.id,
        "status": job.status.value,
        "result": json_text(job.result),
        "error": json_text(job.error),
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
        "cancel_requested": int(job.cancel_requested),
    }


def event_params(job: Job) -> dict[str, Any]:
    """The parameters of a job's history entry for its new status."""
    return {
        "job_id": job.id,
        "at": time_text(job.updated_at),
        "status": job.status.value,
        "attempt": job.attempt,
        "worker_id": job.worker_id,
        "error": json_text(job.error) if job.status in FAILURE_STATUSES else None,
    }


def token_from_row(row: sqlite3.Row) -> TokenRecord:
    """The one place a token row becomes a :class:`TokenRecord`."""
    types = json_value(row["types"])
    return TokenRecord(
        key_id=row["key_id"],
        kind=row["kind"],
        subject=row["subject"],
        secret_hash=bytes(row["secret_hash"]),
        types=None if types is None else frozenset(types),
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=parse_time(row["expires_at"]),
        revoked_at=parse_time(row["revoked_at"]),
    )

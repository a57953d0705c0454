"""Values on the wire: core values as JSON-ready data and back, and their words.

:func:`encode` turns any core value (a :class:`~jobdesk.models.Job`, a page, an
event, usage, a type's limits...) into JSON-ready data; :func:`decode_job`,
:func:`decode_waiting` and :func:`decode_progress_reply` read them back. Times are
ISO 8601 in UTC with a ``Z`` (:func:`timestamp`). :func:`attempts_label` ("N of
M") and :func:`waiting_label` are the one way attempts and waits are told.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from jobdesk.errors import (
    InvalidInput,
)
from jobdesk.groups import Group
from jobdesk.models import (
    Job,
    JobStatus,
    JSONValue,
    ProgressReply,
    UserUsage,
    Waiting,
    WaitReason,
    Worker,
)
from jobdesk.scheduling import Rate, TypeLimits

_ZERO = timedelta(0)

# -- values ---------------------------------------------------------------------------


def timestamp(value: datetime) -> str:
    """``value`` as the wire writes times: ISO 8601 in UTC with a ``Z`` suffix.

    Microseconds appear when there are any: ``2026-03-01T12:00:00Z``,
    ``2026-03-01T12:00:00.250000Z`` (the form pydantic writes too).
    """
    utc = value if value.utcoffset() == _ZERO else value.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


def parse_time(value: object, field: str = "time") -> datetime:
    """A time read from the wire (ISO 8601 with a zone, ``Z`` included), in UTC."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is UTC:  # what the wire writes ("Z")
                return moment
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
    raise InvalidInput(field, "must be an ISO 8601 time with a time zone")


def _optional_time(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)


def attempts_label(job: Job) -> str:
    """The job's attempts as every face shows them: ``"N of M"``.

    N is :attr:`Job.attempts_used <jobdesk.models.Job.attempts_used>`, the starts
    counted against the current budget, and M is ``max_attempts``: ``0 of 3``
    before the first start, ``1 of 3`` while it runs, ``3 of 3`` when the last
    attempt has been spent. A start a worker handed back unfinished, and every
    start before the user's last retry, are not counted, so a released or retried
    job never shows more than M. (``attempt``, the raw count of starts that
    fences workers' writes, stays in the JSON for workers.)
    """
    return f"{job.attempts_used} of {job.max_attempts}"


def waiting_label(waiting: Waiting, clock: Callable[[datetime], str] = timestamp) -> str:
    """Why a pending job waits, in words for its owner: ``"waiting: 10 of 10 of your
    jobs are running"``, ``"scheduled until 14:05"``, ``"its turn: 3 of your jobs
    ahead"``. ``clock`` writes the times (the wire's by default)."""
    if waiting.reason is WaitReason.QUEUED:
        if not waiting.ahead:
            return "its turn: next of your jobs, once a worker is free"
        return f"its turn: {waiting.ahead} of your {'job' if waiting.ahead == 1 else 'jobs'} ahead"
    until = "" if waiting.until is None else clock(waiting.until)
    return _WAIT_WORDS[waiting.reason].format(
        until=until, running=waiting.running, limit=waiting.limit
    )


_WAIT_WORDS = {
    WaitReason.SCHEDULED: "scheduled until {until}",
    WaitReason.BACKOFF: "failed: next attempt at {until}",
    WaitReason.USER_RUNNING_LIMIT: "waiting: {running} of {limit} of your jobs are running",
    WaitReason.TYPE_POOL: "waiting: {running} of {limit} jobs of its type are running",
    WaitReason.TYPE_RATE: "waiting: its type's rate allows the next start at {until}",
}


#: the members of a job's document that are times (the others are JSON values already)
JOB_TIMES = ("created_at", "run_at", "started_at", "finished_at", "updated_at", "lease_expires_at")


def encode_job(job: Job) -> dict[str, JSONValue]:
    """A job as JSON-ready data (the HTTP API's ``Job``).

    ``attempt_offset`` does not travel: ``attempts_used`` and ``attempts_left``
    say what it means for the job's budget.
    """
    document = job_values(job)
    for name in JOB_TIMES:
        document[name] = _optional_time(document[name])
    waiting = document["waiting"]
    if waiting is not None:
        waiting["until"] = _optional_time(waiting["until"])
    return document


def job_values(job: Job) -> dict[str, Any]:
    """:func:`encode_job`'s document with its times (:data:`JOB_TIMES`, and the
    wait's ``until``) still datetimes, in UTC.

    For a JSON writer that writes a UTC time as :func:`timestamp` does
    (``2026-03-01T12:00:00Z``, microseconds when there are any), such as the HTTP
    face's: it skips formatting each time as a string first.
    """
    return {
        "id": job.id,
        "user_id": job.user_id,
        "project_id": job.project_id,
        "type": job.type,
        "status": job.status.value,
        "input": job.input,
        "result": job.result,
        "error": job.error,
        "progress": float(job.progress),
        "progress_message": job.progress_message,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "attempts_left": job.attempts_left,
        "attempts_used": job.attempts_used,
        "created_at": _utc(job.created_at),
        "run_at": _utc(job.run_at),
        "started_at": _utc(job.started_at),
        "finished_at": _utc(job.finished_at),
        "updated_at": _utc(job.updated_at),
        "worker_id": job.worker_id,
        "lease_expires_at": _utc(job.lease_expires_at),
        "cancel_requested": job.cancel_requested,
        "idempotency_key": job.idempotency_key,
        "waiting": _waiting_values(job.waiting),
    }


def _utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC: as it is when it already is (the stores give UTC times)."""
    if value is None or value.utcoffset() == _ZERO:
        return value
    return value.astimezone(UTC)


def encode_group(group: Group) -> dict[str, JSONValue]:
    """A group as JSON-ready data (the HTTP API's ``Group``): its derived status and
    progress, and its jobs' counts by status."""
    return {
        "id": group.id,
        "user_id": group.user_id,
        "project_id": group.project_id,
        "name": group.name,
        "status": group.status.value,
        "progress": float(group.progress),
        "size": group.size,
        "counts": {status.value: count for status, count in group.counts.items()},
        "created_at": timestamp(group.created_at),
        "cancelled_at": _optional_time(group.cancelled_at),
        "on_complete": (
            None
            if group.on_complete is None
            else {"type": group.on_complete.type, "input": group.on_complete.input}
        ),
        "on_complete_job_id": group.on_complete_job_id,
    }


def encode_waiting(waiting: Waiting | None) -> dict[str, JSONValue] | None:
    """Why a pending job waits, as JSON-ready data (None: not asked, or not pending):
    ``{reason, until, running, limit, ahead}``, null where its reason has no figure."""
    document = _waiting_values(waiting)
    if document is not None:
        document["until"] = _optional_time(document["until"])
    return document


def _waiting_values(waiting: Waiting | None) -> dict[str, Any] | None:
    """:func:`encode_waiting`'s document with ``until`` still a datetime (in UTC)."""
    if waiting is None:
        return None
    return {
        "reason": waiting.reason.value,
        "until": _utc(waiting.until),
        "running": waiting.running,
        "limit": waiting.limit,
        "ahead": waiting.ahead,
    }


def encode_usage(usage: UserUsage) -> dict[str, JSONValue]:
    """A user's usage as JSON-ready data: its fields, and ``active`` (running + waiting).

    ``active`` is kept one release for clients of the old ``active``/``max_active``
    pair; it is derived, never a limit.
    """
    data = {field.name: _scalar(getattr(usage, field.name)) for field in dataclasses.fields(usage)}
    data["active"] = usage.active
    return data


def encode_type_limits(limits: TypeLimits) -> dict[str, JSONValue]:
    """A job type's pool and rate: ``{type, max_running, rate}``, the rate as ``"60/min"``."""
    return {
        "type": limits.type,
        "max_running": limits.max_running,
        "rate": None if limits.rate is None else str(limits.rate),
    }


def _encode_worker(worker: Worker) -> JSONValue:
    return {"name": worker.name, "types": None if worker.types is None else sorted(worker.types)}


#: the core types the wire writes in their own way; any other model goes by its fields
_WRITERS: tuple[tuple[type[Any], Callable[[Any], JSONValue]], ...] = (
    (Job, encode_job),
    (Group, encode_group),
    (Worker, _encode_worker),
    (UserUsage, encode_usage),
    (TypeLimits, encode_type_limits),
    (Waiting, encode_waiting),
    (Rate, str),
)


def encode(value: object) -> JSONValue:
    """Any core value as JSON-ready data, the way the wire writes it.

      A :class:`~jobdesk.models.Job` as :func:`encode_job` writes it; a
      :class:`~jobdesk.models.Worker` as its name and sorted types; any other model
      (a page, an event, stats) as its fields; usage, a type's limits and a wait as
    :func:`encode_usage`, :func:`encode_type_limits` and :func:`encode_waiting` write
    them; a rate as ``"60/min"``; times as :func:`timestamp`;
      statuses as their values; sets as sorted lists.
    """
    for kind, write in _WRITERS:
        if isinstance(value, kind):
            return write(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: encode(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple | frozenset | set):
        items = [encode(item) for item in value]
        return items if isinstance(value, list | tuple) else sorted(items)
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    return _scalar(value)


def _scalar(value: object) -> JSONValue:
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _member(data: Mapping[str, Any], name: str, kinds: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        expected = " or ".join(kind.__name__ for kind in _tuple(kinds))
        raise InvalidInput(f"job.{name}", f"must be {expected}, not {type(value).__name__}")
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _time_member(data: Mapping[str, Any], name: str) -> datetime:
    return parse_time(data.get(name), f"job.{name}")


def _optional_time_member(data: Mapping[str, Any], name: str) -> datetime | None:
    return None if data.get(name) is None else _time_member(data, name)


#: the members of a job that :func:`decode_job` reads as they are, and the types each may
#: have (a bool is not an int here)
_JOB_MEMBERS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "user_id": (str,),
    "type": (str,),
    "project_id": (str, type(None)),
    "error": (dict, type(None)),
    "progress": (int, float),
    "progress_message": (str, type(None)),
    "priority": (int,),
    "attempt": (int,),
    "max_attempts": (int,),
    "worker_id": (str, type(None)),
    "cancel_requested": (bool,),
    "idempotency_key": (str, type(None)),
}


def decode_job(data: Mapping[str, Any]) -> Job:
    """The :class:`~jobdesk.models.Job` that :func:`encode_job` wrote.

    Its ``attempt_offset`` comes back from ``attempts_used`` (or, from a server
    that does not send it, from ``attempts_left``). A member missing or of the
    wrong type raises :class:`~jobdesk.errors.InvalidInput` naming it.
    """
    members: dict[str, Any] = {}
    for name, kinds in _JOB_MEMBERS.items():
        value = data.get(name)
        # JSON gives exactly these types: the full check (subclasses, the error) otherwise
        members[name] = value if type(value) in kinds else _member(data, name, kinds)
    attempt, max_attempts = members["attempt"], members["max_attempts"]
    if "attempts_used" in data:
        used = _member(data, "attempts_used", int)
    else:
        used = max_attempts - _member(data, "attempts_left", int)
    try:
        status = JobStatus(str(data.get("status")))
    except ValueError:
        raise InvalidInput("job.status", "must be a job status") from None
    members["progress"] = float(members["progress"])
    return Job(
        **members,
        status=status,
        input=data.get("input"),
        result=data.get("result"),
        created_at=_time_member(data, "created_at"),
        run_at=_time_member(data, "run_at"),
        updated_at=_time_member(data, "updated_at"),
        attempt_offset=max(0, attempt - used),
        started_at=_optional_time_member(data, "started_at"),
        finished_at=_optional_time_member(data, "finished_at"),
        lease_expires_at=_optional_time_member(data, "lease_expires_at"),
        waiting=decode_waiting(data.get("waiting")),
    )


def decode_waiting(data: object) -> Waiting | None:
    """The :class:`~jobdesk.models.Waiting` that :func:`encode_waiting` wrote (None for
    null or missing: a server that does not explain, or a job that is not pending)."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise InvalidInput("job.waiting", "must be an object or null")
    try:
        reason = WaitReason(str(data.get("reason")))
    except ValueError:
        raise InvalidInput("job.waiting.reason", "must be a wait reason") from None
    figures: dict[str, int | None] = {}
    for name in ("running", "limit", "ahead"):
        figure = data.get(name)
        if figure is not None and (not isinstance(figure, int) or isinstance(figure, bool)):
            raise InvalidInput(f"job.waiting.{name}", "must be an integer or null")
        figures[name] = figure
    until = data.get("until")
    return Waiting(
        reason,
        until=None if until is None else parse_time(until, "job.waiting.until"),
        **figures,
    )


def decode_progress_reply(data: Mapping[str, Any]) -> ProgressReply:
    """The :class:`~jobdesk.models.ProgressReply` that :func:`encode` wrote."""
    cancel = data.get("cancel_requested")
    if not isinstance(cancel, bool):
        raise InvalidInput("cancel_requested", "must be true or false")
    lease = data.get("lease_expires_at")
    return ProgressReply(
        cancel_requested=cancel,
        lease_expires_at=None if lease is None else parse_time(lease, "lease_expires_at"),
    )

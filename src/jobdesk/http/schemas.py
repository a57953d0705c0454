"""Request and response bodies of the HTTP API, as pydantic models.

Request bodies check JSON types only and refuse unknown fields (no mass
assignment of ``status``, ``user_id``, ``attempt``...); the rules themselves
(sizes, patterns, ranges) are the core's, which answers with the field and the
rule. The constraints shown in the OpenAPI schema are the core's constants, for
client authors: they document the rules, they do not re-implement them.
Times are ISO 8601, UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
)

from jobdesk import validation, wire
from jobdesk.ids import JOB_ID_PATTERN
from jobdesk.limits import Limits
from jobdesk.models import Job, JobEvent, JobPage, JobStatus, ProgressReply, WaitReason

__all__ = [
    "EVENT_SCHEMA",
    "WORK_EVENT_SCHEMA",
    "ClaimRequest",
    "CompleteRequest",
    "CreateJobRequest",
    "ErrorDetail",
    "FailRequest",
    "HeartbeatRequest",
    "JobEventOut",
    "JobId",
    "JobOut",
    "JobPageOut",
    "JobStateEvent",
    "Out",
    "ProgressReplyOut",
    "ProgressRequest",
    "ReadyEvent",
    "ResyncEvent",
    "WaitingOut",
]

TYPE_RULE = {"pattern": f"^{validation.TYPE_PATTERN.pattern}$"}
# JSON Schema cannot say "printable" (Python's str.isprintable): the control characters
# are the part of the rule a pattern can state; the core refuses the rest with a 422.
PRINTABLE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
NO_NUL_RULE = {"pattern": r"^[^\u0000]*$"}
ID_RULE = {"minLength": 1, "maxLength": validation.MAX_ID_LENGTH, "pattern": PRINTABLE_PATTERN}
JOB_ID_RULE = {"pattern": f"^{JOB_ID_PATTERN.pattern}$"}
ATTEMPT_RULE = {"minimum": 1, "maximum": validation.MAX_ATTEMPT}
JSON_VALUE = "Any JSON value."
BATCH_RULE = {"minItems": 1, "maxItems": validation.MAX_BATCH}
_DEFAULT_LIMITS = Limits()


def _size(limit: int) -> str:
    """A byte limit in words: ``256 KiB``, ``1 MiB``."""
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"


def _whole_number(value: object) -> object:
    # JSON has one number type: 5.0 is the integer 5 (JSON Schema agrees), "5" is not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[StrictInt, BeforeValidator(_whole_number)]
"""A JSON integer: 5 or 5.0, never "5" or true."""


class Body(BaseModel):
    """A request body: known fields only; a field with a default may be left out."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """A response body: the server writes every field (null where it has no value), so
    the schema lists every field as required and generated clients need no ``?``."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class JobSpecIn(Body):
    """One job to create: ``POST /api/v1/jobs`` takes one, ``/jobs/batch`` many."""

    type: Annotated[
        StrictStr,
        Field(description="The job type.", json_schema_extra=TYPE_RULE),
    ]
    input: Annotated[
        Any,
        Field(
            description=f"What the job works on. {JSON_VALUE} "
            f"At most {_size(_DEFAULT_LIMITS.max_input_bytes)} by default."
        ),
    ]
    project_id: Annotated[
        StrictStr | None,
        Field(description="A grouping of your choosing.", json_schema_extra=ID_RULE),
    ] = None
    priority: Annotated[
        Integer,
        Field(
            description="Higher is claimed first.",
            json_schema_extra={
                "minimum": -validation.MAX_PRIORITY,
                "maximum": validation.MAX_PRIORITY,
            },
        ),
    ] = 0
    run_at: Annotated[
        datetime | None,
        Field(description="Not before this time (ISO 8601 with a time zone)."),
    ] = None
    max_attempts: Annotated[
        Integer | None,
        Field(
            description="Starts allowed before a failure is final; the server's default if null.",
            json_schema_extra={"minimum": 1, "maximum": validation.MAX_ATTEMPTS},
        ),
    ] = None


class CreateJobRequest(JobSpecIn):
    """``POST /api/v1/jobs``."""

    idempotency_key: Annotated[
        StrictStr | None,
        Field(
            description="A repeated request with the same key returns the first job "
            "(the `Idempotency-Key` header works too).",
            json_schema_extra={"minLength": 1, "maxLength": 255, "pattern": PRINTABLE_PATTERN},
        ),
    ] = None


class CreateJobsRequest(Body):
    """``POST /api/v1/jobs/batch``: many jobs, one transaction, all or none."""

    jobs: Annotated[list[JobSpecIn], Field(json_schema_extra=BATCH_RULE)]


JobId = Annotated[
    str,
    Path(alias="id", description="A job id (26 characters).", json_schema_extra=JOB_ID_RULE),
]
"""The ``{id}`` of a route (the rule is the core's, shown in the schema)."""

JobType = Annotated[str, Field(json_schema_extra=TYPE_RULE)]
"""A job type in a query string (the rule is the core's, shown in the schema)."""


class ClaimRequest(Body):
    """``POST /api/v1/worker/jobs/claim``."""

    types: Annotated[
        list[Annotated[StrictStr, Field(json_schema_extra=TYPE_RULE)]] | None,
        Field(
            description="Only these job types (within the token's own types).",
            json_schema_extra={"minItems": 1},
        ),
    ] = None
    limit: Annotated[
        Integer,
        Field(
            description="Claim up to this many jobs.",
            json_schema_extra={"minimum": 1, "maximum": validation.MAX_PAGE},
        ),
    ] = 1


Attempt = Annotated[
    Integer,
    Field(
        description="The attempt the worker holds (`attempt` of the claimed job).",
        json_schema_extra=ATTEMPT_RULE,
    ),
]


class ProgressRequest(Body):
    """``POST /api/v1/worker/jobs/{id}/progress``."""

    progress: Annotated[
        float,
        Strict(),
        Field(description="Percent done.", json_schema_extra={"minimum": 0, "maximum": 100}),
    ]
    message: Annotated[
        StrictStr | None,
        Field(
            description="What is happening now.",
            json_schema_extra={"maxLength": validation.MAX_MESSAGE, **NO_NUL_RULE},
        ),
    ] = None
    attempt: Attempt


class HeartbeatRequest(Body):
    """``heartbeat`` and ``release``: only the attempt."""

    attempt: Attempt


class CompleteRequest(Body):
    """``POST /api/v1/worker/jobs/{id}/complete``."""

    result: Annotated[
        Any,
        Field(
            description=f"The job's result. {JSON_VALUE} "
            f"At most {_size(_DEFAULT_LIMITS.max_result_bytes)} by default."
        ),
    ] = None
    attempt: Attempt


def _absent(value: object) -> bool:
    return value is None


class ErrorDetail(Body):
    """A structured failure: what a worker reports, and a job's ``error`` as written back
    (``code`` and ``details`` only when there are any)."""

    message: Annotated[StrictStr, Field(json_schema_extra={"minLength": 1, **NO_NUL_RULE})]
    code: Annotated[
        StrictStr | None,
        Field(json_schema_extra={"maxLength": 128, **NO_NUL_RULE}, exclude_if=_absent),
    ] = None
    details: Annotated[
        Any, Field(description=f"{JSON_VALUE} At most 64 KiB.", exclude_if=_absent)
    ] = None


class FailRequest(Body):
    """``POST /api/v1/worker/jobs/{id}/fail``."""

    error: Annotated[
        Annotated[StrictStr, Field(json_schema_extra={"minLength": 1, **NO_NUL_RULE})]
        | ErrorDetail,
        Field(description="A message, or `{message, code?, details?}`."),
    ]
    retryable: Annotated[
        StrictBool, Field(description="False fails the job now, attempts left or not.")
    ] = True
    retry_after: Annotated[
        Annotated[float, Strict()] | None,
        Field(
            description="Seconds before the next attempt, instead of the exponential backoff "
            "(at most the server's longest backoff, "
            f"{_DEFAULT_LIMITS.retry_backoff_max_seconds:g} by default).",
            json_schema_extra={
                "minimum": 0,
                "maximum": _DEFAULT_LIMITS.retry_backoff_max_seconds,
            },
        ),
    ] = None
    attempt: Attempt


# -- responses -------------------------------------------------------------------------


class WaitingOut(Out):
    """Why a pending job has not started, and the figures that say for how long."""

    reason: Annotated[
        WaitReason,
        Field(
            description="`scheduled` or `backoff` (until `until`), `user_running_limit` "
            "(`running` of your `limit` jobs are running), `type_pool` (`running` of the "
            "type's `limit`), `type_rate` (the next start at `until`), `queued` (its turn: "
            "`ahead` of your own jobs come first)."
        ),
    ]
    until: datetime | None = None
    running: int | None = None
    limit: int | None = None
    ahead: int | None = None


class JobOut(Out):
    """A job, as its owner (or a worker) sees it.

    The body is :func:`jobdesk.wire.encode_job`'s, the one encoding of a job that
    the CLI prints and a remote worker reads back: every ``*Out`` model here
    describes, and validates on the way out, what :func:`jobdesk.wire.encode`
    writes for its core type.
    """

    id: str
    user_id: str
    project_id: str | None
    type: str
    status: JobStatus
    input: Annotated[Any, Field(description=JSON_VALUE)]
    result: Annotated[Any, Field(description=f"{JSON_VALUE} Null until completed.")]
    error: Annotated[ErrorDetail | None, Field(description="The last failure.")]
    progress: float
    progress_message: str | None
    priority: int
    attempt: int
    max_attempts: int
    attempts_left: Annotated[int, Field(description="Starts left in the current budget.")]
    attempts_used: Annotated[
        int,
        Field(
            description="Starts counted against the current budget: attempt "
            "`attempts_used` of `max_attempts` (a start handed back unfinished, or made "
            "before the last retry, is not counted; `attempt` counts every start)."
        ),
    ]
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    idempotency_key: str | None
    waiting: Annotated[
        WaitingOut | None,
        Field(
            description="Why a pending job waits (`GET /jobs/{id}` and its events); null otherwise."
        ),
    ] = None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """The response body for ``job``."""
        return cls.model_validate(wire.encode_job(job))


class JobPageOut(Out):
    """One page of the caller's jobs, newest first."""

    items: list[JobOut]
    next_cursor: Annotated[
        str | None, Field(description="Pass as `cursor` for the next page; null on the last.")
    ]

    @classmethod
    def of(cls, page: JobPage) -> JobPageOut:
        """The response body for ``page``."""
        return cls.model_validate(wire.encode(page))


class JobEventOut(Out):
    """One status change in a job's history."""

    job_id: str
    at: datetime
    status: JobStatus
    attempt: int
    worker_id: str | None
    error: ErrorDetail | None

    @classmethod
    def of(cls, event: JobEvent) -> JobEventOut:
        """The response body for ``event``."""
        return cls.model_validate(wire.encode(event))


class ProgressReplyOut(Out):
    """What a worker learns from a progress report or a heartbeat."""

    cancel_requested: Annotated[
        bool, Field(description="The user cancelled: stop, and report nothing more.")
    ]
    lease_expires_at: datetime | None

    @classmethod
    def of(cls, reply: ProgressReply) -> ProgressReplyOut:
        """The response body for ``reply``."""
        return cls.model_validate(wire.encode(reply))


class JobStateEvent(BaseModel):
    """The data of a ``job`` event on an event stream: the job's state after a change."""

    id: str
    type: str
    status: JobStatus
    progress: float
    progress_message: str | None
    attempt: int
    updated_at: datetime
    waiting: Annotated[
        WaitingOut | None,
        Field(
            description="Why a pending job waits, on one job's stream (as of its last "
            "change); absent elsewhere."
        ),
    ] = None


class ReadyEvent(JobStateEvent):
    """The data of a ``ready`` event on a worker's stream: a job it may take became pending.

    It carries no user id: a worker needs the job, not whose it is."""


class ResyncEvent(BaseModel):
    """The data of a ``resync`` event: list the jobs again (``GET /api/v1/jobs``)."""

    reason: str


def _json_data(model: str) -> dict[str, Any]:
    return {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": f"#/components/schemas/{model}"},
    }


EVENT_SCHEMA: dict[str, Any] = {
    "description": "One Server-Sent Event: `job` (a job's new state; `id` resumes the stream "
    "as `Last-Event-ID`) or `resync` (list the jobs again).",
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "event": {"const": "job"},
                "id": {"type": "string", "pattern": r"^\d+-[0-9A-Z]{26}-[a-z]+$"},
                "data": _json_data("JobStateEvent"),
            },
            "required": ["event", "id", "data"],
        },
        {
            "type": "object",
            "properties": {"event": {"const": "resync"}, "data": _json_data("ResyncEvent")},
            "required": ["event", "data"],
        },
    ],
}
"""The OpenAPI schema of each event (OpenAPI 3.1: ``schema`` describes one event)."""

WORK_EVENT_SCHEMA: dict[str, Any] = {
    "description": "One Server-Sent Event: `ready` (a job this worker may take became pending) "
    "or `resync` (claim again: some may have been missed).",
    "oneOf": [
        {
            "type": "object",
            "properties": {"event": {"const": "ready"}, "data": _json_data("ReadyEvent")},
            "required": ["event", "data"],
        },
        EVENT_SCHEMA["oneOf"][1],
    ],
}
"""The OpenAPI schema of each event of a worker's stream."""

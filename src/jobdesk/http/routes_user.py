"""User routes: a user's own jobs, under ``/api/v1``. Each one translates and delegates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from jobdesk import tracing, wire
from jobdesk.errors import InvalidInput
from jobdesk.http.auth import CurrentUser, JobReader
from jobdesk.http.responses import json_response
from jobdesk.http.runtime import RuntimeDep
from jobdesk.http.schemas import (
    EVENT_SCHEMA,
    ID_RULE,
    CreateJobRequest,
    CreateJobsRequest,
    JobEventOut,
    JobId,
    JobOut,
    JobPageOut,
    JobType,
)
from jobdesk.http.schemas_limits import UsageOut
from jobdesk.http.schemas_problems import documented
from jobdesk.http.sse import open_job_stream, open_user_stream
from jobdesk.models import JobSpec, JobStatus

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["jobs"])

TraceParent = Annotated[
    str | None,
    Header(
        description="W3C trace context: with tracing on (docs/tracing.md), the create's span "
        "continues this trace, and so does each worker attempt of the job.",
    ),
]

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="Resume after this event: every job changed since is sent first.",
    ),
]
_JOB_LINKS = {
    link: {"operationId": operation, "parameters": {"id": "$response.body#/id"}}
    for link, operation in {
        "GetJob": "getJob",
        "CancelJob": "cancelJob",
        "RetryJob": "retryJob",
        "GetJobHistory": "getJobHistory",
        "StreamJobEvents": "streamJobEvents",
        "StartJob": "startJob",
    }.items()
}
_EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A `text/event-stream` of `job` events (and `resync` when the client "
        "should list its jobs again).",
        "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
    }
}


@router.post(
    "/jobs",
    status_code=201,
    operation_id="createJob",
    response_model=JobOut,
    responses={201: {"links": _JOB_LINKS}, **documented(401, 403, 413, 422, 429, 503)},
)
async def create_job(
    body: CreateJobRequest,
    user_id: CurrentUser,
    runtime: RuntimeDep,
    idempotency_header: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Works like the `idempotency_key` field."),
    ] = None,
    traceparent: TraceParent = None,
) -> Response:
    """Create a pending job for the caller, within the caller's limits."""
    key = body.idempotency_key
    if idempotency_header is not None:
        if key is not None and key != idempotency_header:
            raise InvalidInput(
                "idempotency_key", "differs from the Idempotency-Key header; send one of them"
            )
        key = idempotency_header
    with tracing.remote_parent(traceparent):
        job = await runtime.require_desk().create_job(
            user_id,
            body.type,
            body.input,
            body.project_id,
            priority=body.priority,
            run_at=body.run_at,
            max_attempts=body.max_attempts,
            idempotency_key=key,
        )
    runtime.metrics.created(job)
    return json_response(wire.job_values(job), status_code=201)


@router.post(
    "/jobs/batch",
    status_code=201,
    operation_id="createJobs",
    responses=documented(401, 403, 413, 422, 429, 503),
)
async def create_jobs(
    body: CreateJobsRequest,
    user_id: CurrentUser,
    runtime: RuntimeDep,
    traceparent: TraceParent = None,
) -> list[JobOut]:
    """Create many pending jobs for the caller in one transaction: all of them, within
    the caller's limits, or none (429)."""
    specs = [
        JobSpec(
            item.type,
            item.input,
            item.project_id,
            priority=item.priority,
            run_at=item.run_at,
            max_attempts=item.max_attempts,
        )
        for item in body.jobs
    ]
    with tracing.remote_parent(traceparent):
        jobs = await runtime.require_desk().create_jobs(user_id, specs)
    for job in jobs:
        runtime.metrics.created(job)
    return [JobOut.of(job) for job in jobs]


@router.get("/jobs", operation_id="listJobs", responses=documented(401, 403, 422, 503))
async def list_jobs(
    *,
    user_id: CurrentUser,
    runtime: RuntimeDep,
    # Tuples, not lists: an immutable default, and FastAPI's default_factory inspects
    # the factory's signature on every request.
    status: Annotated[tuple[JobStatus, ...], Query(description="Repeat for several.")] = (),
    type: Annotated[  # noqa: A002 - the contract's name
        tuple[JobType, ...], Query(description="Repeat for several.")
    ] = (),
    project_id: Annotated[str | None, Query(json_schema_extra=ID_RULE)] = None,
    limit: Annotated[
        int, Query(description="Page size.", json_schema_extra={"minimum": 1, "maximum": 100})
    ] = 20,
    cursor: Annotated[
        str | None,
        Query(
            description="`next_cursor` of the previous page.", json_schema_extra={"maxLength": 64}
        ),
    ] = None,
) -> JobPageOut:
    """The caller's jobs, newest first, filtered, one page at a time."""
    page = await runtime.require_desk().get_user_jobs(
        user_id,
        status=status or None,
        type=type or None,
        project_id=project_id,
        limit=limit,
        cursor=cursor,
    )
    return JobPageOut.of(page)


@router.get(
    "/jobs/events",
    operation_id="streamAllJobEvents",
    response_class=Response,
    responses={**_EVENT_STREAM, **documented(401, 403, 422, 503)},
)
async def stream_all_job_events(
    user_id: CurrentUser, runtime: RuntimeDep, last_event_id: LastEventId = None
) -> Response:
    """Server-Sent Events: every change to any of the caller's jobs, as it happens."""
    return await open_user_stream(
        runtime.require_desk(),
        runtime.broadcaster,
        runtime.settings,
        runtime.metrics,
        user_id=user_id,
        last_event_id=last_event_id,
    )


@router.get("/jobs/{id}", operation_id="getJob", responses=documented(401, 403, 404, 422, 503))
async def get_job(job_id: JobId, user_id: JobReader, runtime: RuntimeDep) -> JobOut:
    """One of the caller's jobs; a pending one says why it waits (`waiting`). A view token
    for this job (`view_token` query parameter, or the header) reads it too."""
    return JobOut.of(await runtime.require_desk().get_job_status(job_id, user_id))


@router.post(
    "/jobs/{id}/cancel",
    operation_id="cancelJob",
    responses={
        200: {"links": {"RetryJob": _JOB_LINKS["RetryJob"], "GetJob": _JOB_LINKS["GetJob"]}},
        **documented(401, 403, 404, 409, 422, 503),
    },
)
async def cancel_job(job_id: JobId, user_id: CurrentUser, runtime: RuntimeDep) -> JobOut:
    """Cancel a pending or processing job; its worker is told on its next report."""
    job = await runtime.require_desk().cancel_job(job_id, user_id)
    runtime.metrics.cancelled(job)
    return JobOut.of(job)


@router.post(
    "/jobs/{id}/retry",
    operation_id="retryJob",
    responses=documented(401, 403, 404, 409, 422, 429, 503),
)
async def retry_job(job_id: JobId, user_id: CurrentUser, runtime: RuntimeDep) -> JobOut:
    """Put a failed or cancelled job back in the queue with a fresh budget of attempts."""
    return JobOut.of(await runtime.require_desk().retry_job(job_id, user_id))


@router.get(
    "/jobs/{id}/history",
    operation_id="getJobHistory",
    responses=documented(401, 403, 404, 422, 503),
)
async def get_job_history(
    job_id: JobId, user_id: CurrentUser, runtime: RuntimeDep
) -> list[JobEventOut]:
    """The status changes of one of the caller's jobs, oldest first."""
    events = await runtime.require_desk().get_job_history(job_id, user_id)
    return [JobEventOut.of(event) for event in events]


@router.get(
    "/jobs/{id}/events",
    operation_id="streamJobEvents",
    response_class=Response,
    responses={
        **_EVENT_STREAM,
        204: {"description": "The client already has the job's final state: stop."},
        **documented(401, 403, 404, 422, 503),
    },
)
async def stream_job_events(
    job_id: JobId, user_id: JobReader, runtime: RuntimeDep, last_event_id: LastEventId = None
) -> Response:
    """Server-Sent Events: each change to one job; the stream ends after a terminal status
    (or when the view token that opened it expires). A view token for this job (the
    `view_token` query parameter, for a browser's EventSource) opens it too."""
    return await open_job_stream(
        runtime.require_desk(),
        runtime.broadcaster,
        runtime.settings,
        runtime.metrics,
        user_id=user_id,
        job_id=job_id,
        last_event_id=last_event_id,
    )


@router.get("/usage", operation_id="getUsage", responses=documented(401, 403, 503))
async def get_usage(user_id: CurrentUser, runtime: RuntimeDep) -> UsageOut:
    """The caller's limits and how much of them is in use."""
    return UsageOut.of(await runtime.require_desk().get_user_usage(user_id))

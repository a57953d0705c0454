"""Worker routes under ``/api/v1/worker``: remote workers with nothing but a worker token.

Every write names the ``attempt`` the worker holds; the core refuses a stale one
with ``LeaseLost`` (409). Each route translates and delegates.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from jobdesk import validation, wire
from jobdesk.errors import JobdeskError
from jobdesk.http.auth import CurrentWorker
from jobdesk.http.problems import Problem, problem_document
from jobdesk.http.responses import json_response
from jobdesk.http.runtime import Runtime, RuntimeDep
from jobdesk.http.schemas import (
    WORK_EVENT_SCHEMA,
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    JobId,
    JobOut,
    JobType,
    ProgressReplyOut,
    ProgressRequest,
)
from jobdesk.http.schemas_limits import SnoozeRequest
from jobdesk.http.schemas_problems import documented
from jobdesk.http.schemas_worker import (
    BatchOutcome,
    CompleteAndClaimRequest,
    CompleteBatchRequest,
    CycleOutcome,
    WorkerOut,
)
from jobdesk.http.sse import open_work_stream
from jobdesk.models import Completion, Job

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/worker", tags=["worker"])


def _attempt_links(source: str) -> dict[str, Any]:
    """OpenAPI links from a job in a response to the writes that name its attempt."""
    operations = {
        "ReportProgress": "reportProgress",
        "Heartbeat": "heartbeat",
        "CompleteJob": "completeJob",
        "FailJob": "failJob",
        "ReleaseJob": "releaseJob",
        "SnoozeJob": "snoozeJob",
    }
    return {
        link: {
            "operationId": operation,
            "parameters": {"id": f"$response.body#{source}/id"},
            "requestBody": {"attempt": f"$response.body#{source}/attempt"},
        }
        for link, operation in operations.items()
    }


TypeFilter = Annotated[
    tuple[JobType, ...], Query(description="Only these job types; repeat for several.")
]


@router.get("/me", operation_id="getWorker", responses=documented(401, 503))
async def get_worker(worker: CurrentWorker) -> WorkerOut:
    """The worker this token stands for: a remote worker's first call, to check its token."""
    return WorkerOut.of(worker)


@router.get(
    "/events",
    operation_id="streamWork",
    response_class=Response,
    responses={
        200: {
            "description": "A `text/event-stream`: `ready` (a job of the worker's types became "
            "pending; its state as data) and `resync` (claim again: some may have been missed). "
            "Hints only: keep polling `claimJobs`.",
            "content": {"text/event-stream": {"schema": WORK_EVENT_SCHEMA}},
        },
        **documented(401, 422, 503),
    },
)
async def stream_work(
    worker: CurrentWorker,
    runtime: RuntimeDep,
    type: TypeFilter = (),  # noqa: A002 - the contract's name
) -> Response:
    """Server-Sent Events that wake a remote worker when work it may take arrives."""
    asked = validation.job_types(type or None)
    types = worker.types
    if asked is not None:
        types = asked if types is None else types & asked
    return await open_work_stream(
        runtime.broadcaster, runtime.settings, runtime.metrics, types=types
    )


@router.get("/jobs/pending", operation_id="getPendingJobs", responses=documented(401, 422, 503))
async def get_pending_jobs(
    worker: CurrentWorker,
    runtime: RuntimeDep,
    type: TypeFilter = (),  # noqa: A002 - the contract's name
    limit: Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": 100})] = 10,
) -> list[JobOut]:
    """A look at the queue: due pending jobs this worker may take, in claim order."""
    jobs = await runtime.require_desk().get_pending_jobs(worker, types=type or None, limit=limit)
    return [JobOut.of(job) for job in jobs]


@router.post(
    "/jobs/claim",
    operation_id="claimJobs",
    response_model=list[JobOut],
    responses={200: {"links": _attempt_links("/0")}, **documented(401, 413, 422, 503)},
)
async def claim_jobs(body: ClaimRequest, worker: CurrentWorker, runtime: RuntimeDep) -> Response:
    """Atomically start up to ``limit`` due jobs, in queue order (the fast path)."""
    jobs = await runtime.require_desk().claim_jobs(worker, types=body.types, limit=body.limit)
    runtime.metrics.started(jobs)
    return json_response([wire.job_values(job) for job in jobs])


@router.post(
    "/jobs/complete",
    operation_id="completeJobs",
    response_model=BatchOutcome,
    responses=documented(401, 413, 422, 503),
)
async def complete_jobs(
    body: CompleteBatchRequest, worker: CurrentWorker, runtime: RuntimeDep, request: Request
) -> Response:
    """Complete many jobs in one transaction; each outcome is the job or its problem."""
    completions = [Completion(item.job_id, item.attempt, item.result) for item in body.completions]
    outcomes = await runtime.require_desk().complete_jobs(worker, completions)
    return json_response(
        {"outcomes": _completion_outcomes(outcomes, runtime, request, body.return_jobs)}
    )


@router.post(
    "/jobs/complete-and-claim",
    operation_id="completeAndClaimJobs",
    response_model=CycleOutcome,
    responses={200: {"links": _attempt_links("/claimed/0")}, **documented(401, 413, 422, 503)},
)
async def complete_and_claim_jobs(
    body: CompleteAndClaimRequest, worker: CurrentWorker, runtime: RuntimeDep, request: Request
) -> Response:
    """A worker's cycle in one transaction: complete what finished, claim up to ``limit``."""
    completions = [Completion(item.job_id, item.attempt, item.result) for item in body.completions]
    outcomes, claimed = await runtime.require_desk().complete_and_claim_jobs(
        worker, completions, types=body.types, limit=body.limit
    )
    runtime.metrics.started(claimed)
    return json_response(
        {
            "outcomes": _completion_outcomes(outcomes, runtime, request, body.return_jobs),
            "claimed": [wire.job_values(job) for job in claimed],
        }
    )


def _completion_outcomes(
    outcomes: list[Job | JobdeskError], runtime: Runtime, request: Request, return_jobs: bool
) -> list[dict[str, Any]]:
    """Each completion's outcome (a :class:`CompletionOutcome`'s document): the completed
    job (or null, unless ``return_jobs``), or the problem that refused it."""
    answers: list[dict[str, Any]] = []
    for outcome in outcomes:
        if isinstance(outcome, JobdeskError):
            problem = Problem.model_validate(problem_document(outcome, request.scope))
            answers.append({"job": None, "problem": problem.model_dump(mode="json")})
        else:
            runtime.metrics.ended(outcome)
            job = wire.job_values(outcome) if return_jobs else None
            answers.append({"job": job, "problem": None})
    return answers


@router.post(
    "/jobs/{id}/start",
    operation_id="startJob",
    responses={
        200: {"links": _attempt_links("")},
        **documented(401, 404, 409, 422, 503, lease=True),
    },
)
async def start_job(job_id: JobId, worker: CurrentWorker, runtime: RuntimeDep) -> JobOut:
    """Start one chosen pending job: a new attempt under a new lease."""
    job = await runtime.require_desk().start_job(worker, job_id)
    runtime.metrics.started([job])
    return JobOut.of(job)


@router.post(
    "/jobs/{id}/progress",
    operation_id="reportProgress",
    responses=documented(401, 404, 409, 413, 422, 503, lease=True),
)
async def report_progress(
    job_id: JobId, body: ProgressRequest, worker: CurrentWorker, runtime: RuntimeDep
) -> ProgressReplyOut:
    """Record progress and renew the lease; answers whether the user cancelled."""
    reply = await runtime.require_desk().update_job_progress(
        worker, job_id, body.progress, body.message, attempt=body.attempt
    )
    return ProgressReplyOut.of(reply)


@router.post(
    "/jobs/{id}/heartbeat",
    operation_id="heartbeat",
    responses=documented(401, 404, 409, 413, 422, 503, lease=True),
)
async def heartbeat(
    job_id: JobId, body: HeartbeatRequest, worker: CurrentWorker, runtime: RuntimeDep
) -> ProgressReplyOut:
    """Renew the lease without new progress; answers whether the user cancelled."""
    reply = await runtime.require_desk().heartbeat_job(worker, job_id, attempt=body.attempt)
    return ProgressReplyOut.of(reply)


@router.post(
    "/jobs/{id}/complete",
    operation_id="completeJob",
    responses=documented(401, 404, 409, 413, 422, 503, lease=True),
)
async def complete_job(
    job_id: JobId, body: CompleteRequest, worker: CurrentWorker, runtime: RuntimeDep
) -> JobOut:
    """``processing`` -> ``completed`` with the result."""
    job = await runtime.require_desk().complete_job(
        worker, job_id, body.result, attempt=body.attempt
    )
    runtime.metrics.ended(job)
    return JobOut.of(job)


@router.post(
    "/jobs/{id}/fail",
    operation_id="failJob",
    responses=documented(401, 404, 409, 413, 422, 503, lease=True),
)
async def fail_job(
    job_id: JobId, body: FailRequest, worker: CurrentWorker, runtime: RuntimeDep
) -> JobOut:
    """Report a failure: back to the queue after a backoff while attempts remain, else failed."""
    error = body.error if isinstance(body.error, str) else body.error.model_dump(exclude_none=True)
    job = await runtime.require_desk().fail_job(
        worker,
        job_id,
        error,
        retryable=body.retryable,
        attempt=body.attempt,
        retry_after=body.retry_after,
    )
    runtime.metrics.ended(job)
    return JobOut.of(job)


@router.post(
    "/jobs/{id}/release",
    operation_id="releaseJob",
    responses=documented(401, 404, 409, 413, 422, 503, lease=True),
)
async def release_job(
    job_id: JobId, body: HeartbeatRequest, worker: CurrentWorker, runtime: RuntimeDep
) -> JobOut:
    """Hand a job back unfinished (the worker is stopping); the attempt is not spent."""
    job = await runtime.require_desk().release_job(worker, job_id, attempt=body.attempt)
    return JobOut.of(job)


@router.post(
    "/jobs/{id}/snooze",
    operation_id="snoozeJob",
    responses=documented(401, 404, 409, 413, 422, 503, lease=True),
)
async def snooze_job(
    job_id: JobId, body: SnoozeRequest, worker: CurrentWorker, runtime: RuntimeDep
) -> JobOut:
    """Not now (an outside resource is busy): pending again after `delay` seconds; the
    attempt is not spent and no error is recorded."""
    job = await runtime.require_desk().snooze_job(worker, job_id, body.delay, attempt=body.attempt)
    return JobOut.of(job)

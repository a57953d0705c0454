"""The worker's batch routes' bodies: completions in bulk and a worker's whole cycle.

Beside :mod:`jobdesk.http.schemas` (the single-job bodies), which it builds on.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictStr

from jobdesk import validation, wire
from jobdesk.http.problems import Problem
from jobdesk.http.schemas import (
    BATCH_RULE,
    JOB_ID_RULE,
    JSON_VALUE,
    Attempt,
    Body,
    ClaimRequest,
    Integer,
    JobOut,
    Out,
)
from jobdesk.models import Worker

__all__ = [
    "BatchOutcome",
    "CompleteAndClaimRequest",
    "CompleteBatchRequest",
    "CompletionItem",
    "CompletionOutcome",
    "CycleOutcome",
    "WorkerOut",
]


class CompletionItem(Body):
    """One job of a batch completion."""

    job_id: Annotated[StrictStr, Field(json_schema_extra=JOB_ID_RULE)]
    attempt: Attempt
    result: Annotated[Any, Field(description=JSON_VALUE)] = None


#: the ``return_jobs`` field of both batch completions
RETURN_JOBS_RULE = Field(
    description='false: a completed job\'s outcome is `{"job": null, "problem": null}` '
    "(no problem: it completed), for a worker that needs only which ones completed; "
    "the answer is then a fraction of the size.",
)


class CompleteBatchRequest(Body):
    """``POST /api/v1/worker/jobs/complete``: many completions, one transaction."""

    completions: Annotated[list[CompletionItem], Field(json_schema_extra=BATCH_RULE)]
    return_jobs: Annotated[bool, RETURN_JOBS_RULE] = True


class CompletionOutcome(Out):
    """One job of a batch completion: the completed job (null if the request said
    ``return_jobs: false``), or the problem that refused it."""

    job: JobOut | None = None
    problem: Problem | None = None


class BatchOutcome(Out):
    """The outcomes of a batch completion, in the order of the request."""

    outcomes: list[CompletionOutcome]


class CompleteAndClaimRequest(ClaimRequest):
    """``POST /api/v1/worker/jobs/complete-and-claim``: a worker's cycle, one transaction."""

    completions: Annotated[
        list[CompletionItem],
        Field(
            description="The jobs that finished (may be empty).",
            json_schema_extra={"maxItems": validation.MAX_BATCH},
        ),
    ] = []  # noqa: RUF012 - a pydantic model (through ClaimRequest) copies its defaults
    limit: Annotated[
        Integer,
        Field(
            description="Claim up to this many jobs (0: none; then completions must not be empty).",
            json_schema_extra={"minimum": 0, "maximum": validation.MAX_PAGE},
        ),
    ] = 1
    return_jobs: Annotated[bool, RETURN_JOBS_RULE] = True


class CycleOutcome(Out):
    """The completions' outcomes, in the order of the request, and the jobs claimed."""

    outcomes: list[CompletionOutcome]
    claimed: list[JobOut]


class WorkerOut(Out):
    """The worker a token stands for."""

    name: Annotated[str, Field(description="The worker token's name: `worker_id` of its jobs.")]
    types: Annotated[
        list[str] | None, Field(description="The job types it may take; null means any.")
    ]

    @classmethod
    def of(cls, worker: Worker) -> WorkerOut:
        """The response body for ``worker``."""
        return cls.model_validate(wire.encode(worker))

"""Each problem type of the API as its own OpenAPI schema, for typed clients.

:class:`~jobdesk.http.problems.Problem` describes any problem document; the models
here describe one problem type each: its ``type`` URI as a constant and the members
it carries (the 429's ``limit``/``allowed``/``retry_after``, the 409's
``job_status``/``action``, the 503's ``outcome_unknown``...). A client generated
from ``/openapi.json`` can then read those fields by their types. The slugs,
statuses and members are :data:`jobdesk.wire.PROBLEMS`'; a test checks that every
model here carries exactly its problem type's members.

:func:`documented` gives a route's ``responses`` for the error statuses it may answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from jobdesk.errors import (
    Forbidden,
    GroupNotFound,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    RateLimited,
    ScheduleNotFound,
    StoreUnavailable,
    Unauthorized,
)
from jobdesk.http.problems import PROBLEM_MEDIA_TYPE, FieldProblem, Problem
from jobdesk.models import Action, JobStatus

__all__ = [
    "PROBLEM_SCHEMAS",
    "ForbiddenProblem",
    "GroupNotFoundProblem",
    "InvalidInputProblem",
    "InvalidTransitionProblem",
    "JobNotFoundProblem",
    "LeaseLostProblem",
    "RateLimitedProblem",
    "ScheduleNotFoundProblem",
    "StoreUnavailableProblem",
    "TypedProblem",
    "UnauthorizedProblem",
    "documented",
    "type_uri",
]


class TypedProblem(BaseModel):
    """The members every problem document has; each subclass adds its ``type`` and members.

    Every member the server writes is required, so generated clients need no ``?``."""

    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)

    title: str
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str
    request_id: Annotated[
        str | None, Field(description="Quote it when reporting a problem (`X-Request-ID`).")
    ] = None


class InvalidInputProblem(TypedProblem):
    """422: the input broke a rule; ``errors`` names each field and the rule it broke."""

    type: Literal["urn:jobdesk:problem:invalid-input"]
    errors: Annotated[list[FieldProblem], Field(json_schema_extra={"minItems": 1})]


class UnauthorizedProblem(TypedProblem):
    """401: a missing, malformed, unknown, expired or revoked token."""

    type: Literal["urn:jobdesk:problem:unauthorized"]


class JobNotFoundProblem(TypedProblem):
    """404: no such job for this caller (another user's job looks exactly the same)."""

    type: Literal["urn:jobdesk:problem:job-not-found"]


class GroupNotFoundProblem(TypedProblem):
    """404: no such group for this caller (another user's group looks exactly the same)."""

    type: Literal["urn:jobdesk:problem:group-not-found"]


class ScheduleNotFoundProblem(TypedProblem):
    """404: no schedule of that name."""

    type: Literal["urn:jobdesk:problem:schedule-not-found"]
    name: Annotated[str, Field(description="The schedule's name, as asked for.")]


class ForbiddenProblem(TypedProblem):
    """403: a read-only view token was used to change something, or to read anything but
    its own job or group."""

    type: Literal["urn:jobdesk:problem:forbidden"]


class RateLimitedProblem(TypedProblem):
    """429: a per-user limit refused the request; nothing was written."""

    type: Literal["urn:jobdesk:problem:rate-limited"]
    limit: Annotated[
        Literal["waiting", "daily"],
        Field(description="Which limit: pending jobs held (`waiting`) or jobs created today."),
    ]
    allowed: Annotated[int, Field(description="The limit's value for this user.", ge=0)]
    retry_after: Annotated[
        int | None,
        Field(
            description="Seconds until the limit resets, when that can be known (the daily "
            "limit); null for the waiting limit (see the `Retry-After` header's hint).",
            ge=0,
        ),
    ]
    fits: Annotated[
        int | None,
        Field(
            description="How many jobs the limit leaves room for now, when a batch or a "
            "group larger than that was refused; null otherwise.",
            ge=0,
        ),
    ]


class InvalidTransitionProblem(TypedProblem):
    """409: the job's status does not allow this action now."""

    type: Literal["urn:jobdesk:problem:invalid-transition"]
    job_status: Annotated[JobStatus, Field(description="The job's status when refused.")]
    action: Annotated[Action, Field(description="What was asked of the job.")]


class LeaseLostProblem(TypedProblem):
    """409: the worker no longer holds the job under the attempt it named: stop working on it."""

    type: Literal["urn:jobdesk:problem:lease-lost"]


class StoreUnavailableProblem(TypedProblem):
    """503: the database is unavailable; try again after ``Retry-After`` seconds."""

    type: Literal["urn:jobdesk:problem:store-unavailable"]
    outcome_unknown: Annotated[
        bool,
        Field(
            description="True: the connection broke while committing, the change may have "
            "been applied; read it back (or repeat it with the same Idempotency-Key)."
        ),
    ]


PROBLEM_SCHEMAS: dict[type[Exception], type[TypedProblem]] = {
    InvalidInput: InvalidInputProblem,
    Unauthorized: UnauthorizedProblem,
    JobNotFound: JobNotFoundProblem,
    GroupNotFound: GroupNotFoundProblem,
    ScheduleNotFound: ScheduleNotFoundProblem,
    Forbidden: ForbiddenProblem,
    RateLimited: RateLimitedProblem,
    InvalidTransition: InvalidTransitionProblem,
    LeaseLost: LeaseLostProblem,
    StoreUnavailable: StoreUnavailableProblem,
}
"""Error class -> the schema of its problem document (the classes of :data:`wire.PROBLEMS`
a route may answer with; 500s are not documented)."""


def type_uri(model: type[BaseModel]) -> str:
    """The ``type`` member every document of ``model`` has."""
    (uri,) = get_args(model.model_fields["type"].annotation)
    return str(uri)


_DESCRIPTIONS = {
    401: "Missing, malformed, unknown, expired or revoked token (see `WWW-Authenticate`).",
    403: "A read-only view token was used for something it does not grant.",
    404: "Not found for this caller (another user's looks exactly the same).",
    409: "The job's status or lease does not allow this now.",
    413: "The request body is over the size limit.",
    422: "Invalid input: `errors` names each field and the rule it broke.",
    429: "A per-user limit refused the request: `limit`, `allowed`, `retry_after`; "
    "see `Retry-After`.",
    503: "The database is unavailable (`outcome_unknown` says whether the change may have "
    "been applied); try again after `Retry-After` seconds.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    503: {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}
_STATUS_SCHEMAS: dict[int, tuple[type[BaseModel], ...]] = {
    401: (UnauthorizedProblem,),
    403: (ForbiddenProblem,),
    404: (JobNotFoundProblem,),
    413: (Problem,),  # the body limit's: a plain problem (RFC 9457's about:blank)
    422: (InvalidInputProblem,),
    429: (RateLimitedProblem,),
    503: (StoreUnavailableProblem,),
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def documented(
    *statuses: int,
    lease: bool = False,
    not_found: type[TypedProblem] = JobNotFoundProblem,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each its problem type's schema.

    A 409 is an ``invalid-transition``; with ``lease`` (a worker's write under an
    attempt) it may also be a ``lease-lost``, told apart by ``type``. A 404 is
    ``not_found``'s (a job's, unless the route's resource is a group or a schedule).
    """
    schemas = dict(_STATUS_SCHEMAS)
    schemas[404] = (not_found,)
    schemas[409] = (
        (InvalidTransitionProblem, LeaseLostProblem) if lease else (InvalidTransitionProblem,)
    )
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        models = schemas[status]
        schema: dict[str, Any] = (
            _ref(models[0])
            if len(models) == 1
            else {
                "oneOf": [_ref(model) for model in models],
                "discriminator": {
                    "propertyName": "type",
                    "mapping": {type_uri(model): _ref(model)["$ref"] for model in models},
                },
            }
        )
        responses[status] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
    return responses

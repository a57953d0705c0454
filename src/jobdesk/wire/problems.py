"""Errors on the wire: the one table from each error to its problem type, both ways.

:data:`PROBLEMS` maps each :mod:`jobdesk.errors` class to its RFC 9457 problem type
(``urn:jobdesk:problem:<slug>``), HTTP status, title and extra members;
:func:`encode_error` writes a problem document from an exception,
:func:`error_from_problem` rebuilds the exception.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jobdesk.errors import (
    Forbidden,
    GroupNotFound,
    InvalidInput,
    InvalidTransition,
    JobdeskError,
    JobNotFound,
    LeaseLost,
    RateLimited,
    ScheduleNotFound,
    StoreUnavailable,
    Unauthorized,
)
from jobdesk.models import (
    JSONValue,
)

PROBLEM_PREFIX = "urn:jobdesk:problem:"


# -- errors ---------------------------------------------------------------------------

Rebuild = Callable[[str, Mapping[str, Any], str], JobdeskError]
"""``(detail, document, job_id) -> exception``: an error rebuilt from its problem."""


def _no_members(error: Any) -> dict[str, JSONValue]:
    return {}


@dataclass(frozen=True, slots=True)
class ProblemType:
    """How one error class travels: its problem type, HTTP status, title and members."""

    slug: str
    status: int
    title: str
    #: the members it carries beyond RFC 9457's (``type``, ``title``, ``status``, ``detail``)
    members: tuple[str, ...] = ()
    #: those members' values for one exception
    extensions: Callable[[Any], dict[str, JSONValue]] = _no_members
    #: the exception a document of this type stands for; None: a bare ``JobdeskError``
    rebuild: Rebuild | None = None

    @property
    def uri(self) -> str:
        """The problem document's ``type`` member."""
        return PROBLEM_PREFIX + self.slug


def _invalid_input(detail: str, document: Mapping[str, Any], job_id: str) -> JobdeskError:
    errors = document.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else {}
    if not isinstance(first, dict):
        first = {}
    return InvalidInput(str(first.get("field", "body")), str(first.get("rule", detail)))


def _rate_limited(detail: str, document: Mapping[str, Any], job_id: str) -> JobdeskError:
    allowed, retry_after = document.get("allowed"), document.get("retry_after")
    fits = document.get("fits")
    return RateLimited(
        "daily" if document.get("limit") == "daily" else "waiting",
        allowed if isinstance(allowed, int) else 0,
        retry_after if isinstance(retry_after, int) else None,
        fits=fits if isinstance(fits, int) else None,
    )


def _invalid_transition(detail: str, document: Mapping[str, Any], job_id: str) -> JobdeskError:
    status, action = document.get("job_status"), document.get("action")
    error = InvalidTransition(job_id, str(status), str(action))
    error.args = (detail,)  # the server's own wording
    return error


def _lease_lost(detail: str, document: Mapping[str, Any], job_id: str) -> JobdeskError:
    error = LeaseLost(job_id, detail)
    error.args = (detail,)
    return error


def _store_unavailable(detail: str, document: Mapping[str, Any], job_id: str) -> JobdeskError:
    return StoreUnavailable(
        f"the jobdesk server could not reach its database: {detail}",
        outcome_unknown=document.get("outcome_unknown") is True,
    )


PROBLEMS: Mapping[type[JobdeskError], ProblemType] = {
    InvalidInput: ProblemType(
        "invalid-input",
        422,
        "Invalid input",
        ("errors",),
        lambda error: {"errors": [{"field": error.field, "rule": error.rule}]},
        _invalid_input,
    ),
    JobNotFound: ProblemType(
        "job-not-found",
        404,
        "Job not found",
        rebuild=lambda detail, document, job_id: JobNotFound(job_id),
    ),
    ScheduleNotFound: ProblemType(
        "schedule-not-found",
        404,
        "Schedule not found",
        ("name",),
        lambda error: {"name": error.name},
        lambda detail, document, job_id: ScheduleNotFound(str(document.get("name", "?"))),
    ),
    GroupNotFound: ProblemType(
        "group-not-found",
        404,
        "Group not found",
        rebuild=lambda detail, document, job_id: GroupNotFound(job_id),
    ),
    RateLimited: ProblemType(
        "rate-limited",
        429,
        "Too many jobs",
        ("limit", "allowed", "retry_after", "fits"),
        lambda error: {
            "limit": error.limit,
            "allowed": error.allowed,
            "retry_after": error.retry_after,
            "fits": error.fits,
        },
        _rate_limited,
    ),
    Unauthorized: ProblemType(
        "unauthorized",
        401,
        "Unauthorized",
        rebuild=lambda detail, document, job_id: Unauthorized(detail),
    ),
    Forbidden: ProblemType(
        "forbidden",
        403,
        "Forbidden",
        rebuild=lambda detail, document, job_id: Forbidden(detail),
    ),
    InvalidTransition: ProblemType(
        "invalid-transition",
        409,
        "Invalid transition",
        ("job_status", "action"),
        lambda error: {"job_status": error.status, "action": error.action},
        _invalid_transition,
    ),
    LeaseLost: ProblemType("lease-lost", 409, "Lease lost", rebuild=_lease_lost),
    StoreUnavailable: ProblemType(
        "store-unavailable",
        503,
        "Service unavailable",
        ("outcome_unknown",),
        lambda error: {"outcome_unknown": error.outcome_unknown},
        _store_unavailable,
    ),
    JobdeskError: ProblemType("internal-error", 500, "Internal Server Error"),
}
"""Error class -> problem type; the nearest class in an exception's MRO wins."""

_BY_SLUG = {problem.slug: problem for problem in PROBLEMS.values()}
#: the problem a status stands for when the answer is not a jobdesk problem (a proxy's);
#: 413 is the server's (or a proxy's) body limit: input too large
_BY_STATUS = {
    401: PROBLEMS[Unauthorized],
    404: PROBLEMS[JobNotFound],
    413: PROBLEMS[InvalidInput],
    422: PROBLEMS[InvalidInput],
}


def problem_type(error: JobdeskError | type[JobdeskError]) -> ProblemType:
    """The problem type of ``error`` (an exception or its class): its class's or the
    nearest ancestor's."""
    cls = error if isinstance(error, type) else type(error)
    for ancestor in cls.__mro__:
        if ancestor in PROBLEMS:
            return PROBLEMS[ancestor]
    return PROBLEMS[JobdeskError]  # pragma: no cover - JobdeskError is in every MRO


def status_of(error: JobdeskError | type[JobdeskError]) -> int:
    """The HTTP status ``error`` (an exception or its class) is answered with."""
    return problem_type(error).status


def encode_error(
    error: JobdeskError, detail: str | None = None, **members: JSONValue
) -> dict[str, JSONValue]:
    """The problem document of ``error``: ``type``, ``title``, ``status``, ``detail``
    (``str(error)`` unless given), then ``members`` (``request_id``, say), then the
    members its problem type carries."""
    problem = problem_type(error)
    return {
        "type": problem.uri,
        "title": problem.title,
        "status": problem.status,
        "detail": str(error) if detail is None else detail,
        **members,
        **problem.extensions(error),
    }


def error_from_problem(
    status: int, document: Mapping[str, Any], *, job_id: str | None = None
) -> JobdeskError:
    """The :mod:`jobdesk.errors` exception a problem document (answered with
    ``status``) stands for.

    A document that is not a jobdesk problem (a proxy's) is read by its status:
    401, 404, 413 and 422 as the errors they mean, any other 5xx as
    :class:`~jobdesk.errors.StoreUnavailable`, the rest as a bare
    :class:`~jobdesk.errors.JobdeskError`.
    """
    slug = str(document.get("type", "")).removeprefix(PROBLEM_PREFIX)
    detail = str(document.get("detail") or f"the server answered {status}")
    problem = _BY_SLUG.get(slug) or _BY_STATUS.get(status)
    if problem is not None and problem.rebuild is not None:
        return problem.rebuild(detail, document, job_id or "?")
    if status >= 500 and slug != PROBLEMS[JobdeskError].slug:  # a proxy's 502, 504...
        return StoreUnavailable(f"the jobdesk server answered {status}: {detail}")
    return JobdeskError(f"the jobdesk server answered {status}: {detail}")

"""Errors as RFC 9457 problem details: the HTTP side of :data:`jobdesk.wire.PROBLEMS`.

The problem types themselves (slug, status, title, members) are the wire's, shared
with the remote worker that reads them back; this module adds what only HTTP has:
headers, the public wording of internal failures, logging, the framework's own
errors. Every error response of the API is ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail`` and ``request_id``, plus ``errors`` (each
``{field, rule}``) when input was refused. Routes raise the core's exceptions;
the handlers here translate them, and nothing else chooses a status code. No
stack trace reaches a client: an unexpected error is logged with its request id
and answered with a bare 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from jobdesk import wire
from jobdesk.errors import (
    InvalidInput,
    JobdeskError,
    RateLimited,
    StoreUnavailable,
    Unauthorized,
)
from jobdesk.http.settings import Settings

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "REGISTRY",
    "ContentTooLarge",
    "FieldProblem",
    "HttpProblem",
    "MissingCredentials",
    "Problem",
    "problem_document",
    "problem_for",
    "problem_response",
    "request_id_of",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUEST_ID_KEY = "jobdesk.request_id"
_log = logging.getLogger("jobdesk.http")


class MissingCredentials(Unauthorized):
    """No ``Authorization: Bearer`` header at all (401 without an ``error`` code, RFC 6750)."""


class ContentTooLarge(HTTPException):
    """The request body went over the limit while it streamed in."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than the limit of {limit} bytes",
            headers={"Connection": "close"},
        )


class FieldProblem(BaseModel):
    """One refused input: which field, and the rule it broke."""

    field: str
    rule: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


Headers = Callable[[Any, Settings], Mapping[str, str]]


def _no_headers(_: object, settings: Settings) -> Mapping[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class HttpProblem:
    """How one exception class is answered over HTTP: its problem type (slug, status,
    title and members, from :data:`jobdesk.wire.PROBLEMS`) and what only HTTP adds."""

    problem: wire.ProblemType
    headers: Headers = _no_headers
    #: said instead of the exception's message (which may name files or hosts), or made
    #: from the exception
    public_detail: str | Callable[[Any], str] | None = None
    #: log the exception (with its traceback) when it is answered
    log: bool = field(default=False)

    @property
    def status(self) -> int:
        """The response's status code."""
        return self.problem.status

    @property
    def slug(self) -> str:
        """The last part of the problem's ``type``."""
        return self.problem.slug

    @property
    def title(self) -> str:
        """The problem's ``title``."""
        return self.problem.title

    @property
    def uri(self) -> str:
        """The problem's ``type`` member."""
        return self.problem.uri


def _bearer(error: str | None, description: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="jobdesk"'
    if error is not None:
        value += f', error="{error}"'
    if description:
        safe = "".join(c for c in description if c.isascii() and c.isprintable() and c not in '"\\')
        value += f', error_description="{safe}"'
    return {"WWW-Authenticate": value}


def _rate_limit_headers(exc: RateLimited, settings: Settings) -> dict[str, str]:
    # The waiting limit frees when one of the user's pending jobs starts or is cancelled,
    # a time nobody knows: a hint from the settings keeps clients from retrying in a
    # tight loop.
    seconds = exc.retry_after or settings.active_limit_retry_after_seconds
    return {"Retry-After": str(seconds)}


_HTTP_ONLY: dict[type[Exception], HttpProblem] = {
    RateLimited: HttpProblem(wire.PROBLEMS[RateLimited], headers=_rate_limit_headers),
    MissingCredentials: HttpProblem(
        wire.PROBLEMS[Unauthorized], headers=lambda exc, settings: _bearer(None)
    ),
    Unauthorized: HttpProblem(
        wire.PROBLEMS[Unauthorized],
        headers=lambda exc, settings: _bearer("invalid_token", str(exc)),
    ),
    StoreUnavailable: HttpProblem(
        wire.PROBLEMS[StoreUnavailable],
        headers=lambda exc, settings: {"Retry-After": "1"},
        public_detail=lambda exc: (
            "the connection to the database broke while committing: the change may have "
            "been applied; read it back (or repeat it with the same Idempotency-Key)"
            if exc.outcome_unknown
            else "the database is unavailable; nothing was applied; try again shortly"
        ),
        log=True,
    ),
    JobdeskError: HttpProblem(
        wire.PROBLEMS[JobdeskError],
        public_detail="an unexpected error occurred; quote the request id when reporting it",
        log=True,
    ),
}

REGISTRY: dict[type[Exception], HttpProblem] = {
    **{error: HttpProblem(problem) for error, problem in wire.PROBLEMS.items()},
    **_HTTP_ONLY,
}
"""Exception class -> how it is answered; the nearest class in an exception's MRO wins.

Slugs, statuses, titles and members are :data:`jobdesk.wire.PROBLEMS`'; only the
headers, the public wording and logging are HTTP's.
"""


def problem_for(exc: JobdeskError) -> HttpProblem:
    """The registry entry for ``exc``: its own class's, or its nearest ancestor's."""
    for cls in type(exc).__mro__:
        if cls in REGISTRY:
            return REGISTRY[cls]
    return REGISTRY[JobdeskError]  # pragma: no cover - JobdeskError is in every MRO


def request_id_of(scope: Scope) -> str | None:
    """The id the request context middleware gave this request."""
    value = scope.get(REQUEST_ID_KEY)
    return value if isinstance(value, str) else None


class ProblemResponse(Response):
    """A problem document, serialised compactly."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


# RFC 9110's names where Python's HTTPStatus still has the RFC 7231 ones.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def problem_response(
    scope: Scope,
    status: int,
    *,
    type_uri: str = "about:blank",
    title: str | None = None,
    detail: str,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, object] | None = None,
) -> Response:
    """A problem+json response for the request in ``scope``."""
    body: dict[str, object] = {
        "type": type_uri,
        "title": title or _TITLES.get(status) or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "request_id": request_id_of(scope),
    }
    body.update(extensions or {})
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def _public_detail(problem: HttpProblem, exc: JobdeskError) -> str:
    if problem.public_detail is None:
        return str(exc)
    if isinstance(problem.public_detail, str):
        return problem.public_detail
    return problem.public_detail(exc)


def problem_document(exc: JobdeskError, scope: Scope) -> dict[str, object]:
    """The problem document of a core exception (also one item of a batch's outcomes)."""
    problem = problem_for(exc)
    if problem.log:
        _log.error(
            "%s answered with %d (request %s)",
            type(exc).__name__,
            problem.status,
            request_id_of(scope),
            exc_info=exc,
        )
    return wire.encode_error(exc, _public_detail(problem, exc), request_id=request_id_of(scope))


async def jobdesk_error_handler(request: Request, exc: Exception) -> Response:
    """Answer a core exception as its registry entry says."""
    assert isinstance(exc, JobdeskError)
    document = problem_document(exc, request.scope)
    headers = problem_for(exc).headers(exc, request.app.state.jobdesk.settings)
    return ProblemResponse(document, status_code=problem_for(exc).status, headers=dict(headers))


def _field_name(location: tuple[int | str, ...]) -> str:
    # ("body", "error", "message") -> "error.message"; ("query", "limit") -> "limit";
    # ("body", "jobs", 17, "input") -> "jobs[17].input", as the core names a list's entries
    parts = list(location[1:]) if len(location) > 1 else [location[0]]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """Answer a request that did not fit its schema: 422 naming every field and its rule."""
    assert isinstance(exc, RequestValidationError)
    problems: list[dict[str, str]] = []
    for error in exc.errors():
        location = tuple(error.get("loc", ("body",)))
        rule = str(error.get("msg", "is invalid"))
        if error.get("type") == "json_invalid":
            # The location holds the character offset of the syntax error.
            reason = (error.get("ctx") or {}).get("error", "syntax error")
            rule = f"must be valid JSON ({reason} at character {location[-1]})"
            location = ("body",)
        problems.append({"field": _field_name(location), "rule": rule})
    first = problems[0] if problems else {"field": "request", "rule": "is invalid"}
    detail = f"{first['field']}: {first['rule']}"
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more: see errors)"
    problem = REGISTRY[InvalidInput]
    return problem_response(
        request.scope,
        422,
        type_uri=problem.uri,
        title=problem.title,
        detail=detail,
        extensions={"errors": problems},
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Answer the framework's own errors (no such route, wrong method, body too large)."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI could not decode the body (not UTF-8, nested too deep to parse):
        # invalid input like any other, naming the body.
        problem = REGISTRY[InvalidInput]
        rule = "must be a JSON document encoded in UTF-8"
        return problem_response(
            request.scope,
            422,
            type_uri=problem.uri,
            title=problem.title,
            detail=f"body: {rule}",
            extensions={"errors": [{"field": "body", "rule": rule}]},
        )
    detail = exc.detail
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"no route matches {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        # The router names the methods of the first route on the path only; several
        # routes may share a path (GET and POST /api/v1/jobs).
        headers["Allow"] = ", ".join(_allowed_methods(request)) or headers.get("Allow", "")
    return problem_response(request.scope, exc.status_code, detail=str(detail), headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path."""
    path = request.url.path
    methods: set[str] = set()
    for prefix, route in _routes(request.app.router.routes, ""):
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is None or not route_methods or not path.startswith(prefix):
            continue
        if regex.match(path[len(prefix) :]):
            methods |= route_methods
    return sorted(methods)


def _routes(routes: Iterable[Any], prefix: str) -> Iterator[tuple[str, Any]]:
    # FastAPI keeps an included router whole (with its prefix) rather than copying its
    # routes into the app's list.
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is None:
            yield prefix, route
            continue
        context = getattr(route, "include_context", None)
        yield from _routes(inner.routes, prefix + str(getattr(context, "prefix", "") or ""))


def internal_error_response(scope: Scope) -> Response:
    """The bare 500 of an unexpected error; its cause stays in the log."""
    problem = REGISTRY[JobdeskError]
    assert isinstance(problem.public_detail, str)
    return problem_response(
        scope, 500, type_uri=problem.uri, title=problem.title, detail=problem.public_detail
    )


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """The last resort behind the request context middleware (which answers first)."""
    _log.error("unexpected error (request %s)", request_id_of(request.scope), exc_info=exc)
    return internal_error_response(request.scope)


HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    JobdeskError: jobdesk_error_handler,
    RequestValidationError: validation_error_handler,
    HTTPException: http_exception_handler,
    Exception: unexpected_error_handler,
}
"""Exception handlers for ``FastAPI(exception_handlers=...)``."""

"""A user's pages: sign in and out, their jobs, one job, creating, cancelling, retrying.

Each view reads the session, calls the desk (in process, never the HTTP API) and
renders a template; none holds a rule. A job of another user is the same 404 as a
job that does not exist.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from jobdesk.desk import JobDesk
from jobdesk.errors import (
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    RateLimited,
    Unauthorized,
)
from jobdesk.http.dashboard.forms import ListFilters, input_maxlength, usage_refusal
from jobdesk.http.dashboard.live import open_job_stream, open_list_stream
from jobdesk.http.dashboard.render import error_page, page
from jobdesk.http.dashboard.session import (
    FormTooLarge,
    Visit,
    csrf_matches,
    read_form,
    sign_in,
    sign_out,
    verify_token,
    visit,
)
from jobdesk.http.runtime import runtime_of
from jobdesk.models import Action, Job, JobStatus, sources
from jobdesk.wire import problem_type, status_of

__all__ = ["router"]

PAGE_SIZE = 25
_NOTICES = {
    "created": "Job created.",
    "cancelled": "Job cancelled.",
    "retried": "Job queued again.",
}
_CANCELLABLE = sources(Action.CANCEL)
_RETRYABLE = sources(Action.RETRY)


router = APIRouter(include_in_schema=False)


def _desk(request: Request) -> JobDesk:
    return runtime_of(request).require_desk()


def _signed_in_user(current: Visit) -> str | None:
    if current.session is None or current.session.kind != "user":
        return None
    return current.session.subject


def _to_sign_in(current: Visit) -> Response:
    target = "/admin" if current.session is not None else "/signin"
    return current.finish(RedirectResponse(target, status_code=303))


async def _list_page(
    request: Request,
    current: Visit,
    user_id: str,
    *,
    form: dict[str, str] | None = None,
    form_errors: dict[str, str] | None = None,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    desk = _desk(request)
    filters = ListFilters.of(request.query_params)
    errors = dict(filters.errors)
    items: list[Job] = []
    next_cursor = None
    if not errors:
        try:
            result = await desk.get_user_jobs(
                user_id,
                status=filters.statuses or None,
                type=filters.type or None,
                project_id=filters.project or None,
                limit=PAGE_SIZE,
                cursor=request.query_params.get("cursor") or None,
            )
            items, next_cursor = result.items, result.next_cursor
            # A list does not say why a job waits; each pending row asks, as its page would.
            items = [
                await desk.get_job_status(job.id, user_id)
                if job.status is JobStatus.PENDING
                else job
                for job in items
            ]
        except InvalidInput as exc:
            errors[exc.field] = exc.rule
    usage = await desk.get_user_usage(user_id)
    return current.finish(
        page(
            "jobs.html",
            status_code=status_code,
            visit=current,
            user_id=user_id,
            jobs=items,
            next_cursor=next_cursor,
            filters=filters,
            filter_errors=errors,
            usage=usage,
            form=form or {"type": "", "project_id": "", "input": "{}"},
            form_errors=form_errors or {},
            input_maxlength=input_maxlength(runtime_of(request).settings),
            alert=alert,
            newest=items[0].id if items else "",
            paged=bool(request.query_params.get("cursor")),
        )
    )


# -- sign in and out ---------------------------------------------------------------------


@router.get("/signin")
async def sign_in_page(request: Request) -> Response:
    """The sign-in form."""
    current = await visit(request)
    return current.finish(page("signin.html", visit=current, error=None))


@router.post("/signin")
async def sign_in_submit(request: Request) -> Response:
    """Check the token and keep it in the session cookie."""
    current = await visit(request)
    form = await _checked_form(request, current)
    if isinstance(form, Response):
        return form
    token = form.get("token", "").strip()
    try:
        if not token:
            raise Unauthorized("paste a token: a user token (jdu_...), a JWT or an admin token")
        session = await verify_token(request, token)
    except (Unauthorized, InvalidInput) as exc:
        return current.finish(
            page(
                "signin.html",
                status_code=status_of(Unauthorized),
                visit=current,
                error=f"Not signed in: {exc}",
            )
        )
    target = "/admin" if session.kind == "admin" else "/"
    return sign_in(RedirectResponse(target, status_code=303), token, current)


@router.post("/signout")
async def sign_out_submit(request: Request) -> Response:
    """Forget the session cookie."""
    current = await visit(request)
    form = await _checked_form(request, current)
    if isinstance(form, Response):
        return form
    return sign_out(RedirectResponse("/signin", status_code=303), current)


async def _checked_form(
    request: Request, current: Visit, *, creating_for: str | None = None
) -> dict[str, str] | Response:
    """The POST's form if it carries the session's CSRF token; else the page that says
    why not. A create form too large to read is the job list with the error beside the
    input (the form's other values are lost with it)."""
    try:
        form = await read_form(request)
    except FormTooLarge:
        if creating_for is None:
            return error_page(current, 413, "Form too large", _too_large(request))
        errors = {"input": _too_large(request)}
        return await _list_page(request, current, creating_for, form_errors=errors, status_code=413)
    if not csrf_matches(request, current, form):
        return _csrf_refused(current)
    return form


def _too_large(request: Request) -> str:
    limit = runtime_of(request).settings.max_body_bytes
    return f"The form was over the {limit:,} bytes the server accepts: shorten the input."


def _csrf_refused(current: Visit) -> Response:
    return error_page(
        current,
        403,
        "Form expired",
        "This form expired or came from another site: reload the page and try again.",
    )


# -- the job list --------------------------------------------------------------------------


@router.get("/")
async def jobs_page(request: Request) -> Response:
    """The user's jobs, newest first, with filters, usage and the create form."""
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return _to_sign_in(current)
    return await _list_page(request, current, user_id)


@router.get("/rows")
async def more_rows(request: Request) -> Response:
    """The next page of rows (for "load more"), as a fragment."""
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return Response(status_code=status_of(Unauthorized))
    filters = ListFilters.of(request.query_params)
    try:
        result = await _desk(request).get_user_jobs(
            user_id,
            status=filters.statuses or None,
            type=filters.type or None,
            project_id=filters.project or None,
            limit=PAGE_SIZE,
            cursor=request.query_params.get("cursor") or None,
        )
    except InvalidInput as exc:
        return Response(str(exc), status_code=422, media_type="text/plain")
    return page(
        "rows.html",
        visit=current,
        jobs=result.items,
        next_cursor=result.next_cursor,
        filters=filters,
    )


@router.post("/jobs")
async def create_job(request: Request) -> Response:
    """Create a job from the form; errors are shown beside their field."""
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return _to_sign_in(current)
    form = await _checked_form(request, current, creating_for=user_id)
    if isinstance(form, Response):
        return form
    values = {name: form.get(name, "").strip() for name in ("type", "project_id", "input")}
    errors: dict[str, str] = {}
    document: Any = None
    try:
        document = json.loads(values["input"] or "null")
    except ValueError as exc:
        errors["input"] = f"input must be valid JSON: {exc}"
        maxlength = input_maxlength(runtime_of(request).settings)
        if len(form.get("input", "")) >= maxlength:
            errors["input"] += f" (the field holds at most {maxlength:,} characters)"
    if not values["type"]:
        errors["type"] = "type is required"
    if errors:
        return await _list_page(
            request,
            current,
            user_id,
            form=values,
            form_errors=errors,
            status_code=status_of(InvalidInput),
        )
    desk = _desk(request)
    try:
        job = await desk.create_job(user_id, values["type"], document, values["project_id"] or None)
    except InvalidInput as exc:
        name = exc.field if exc.field in values else "input"
        return await _list_page(
            request,
            current,
            user_id,
            form=values,
            form_errors={name: str(exc)},
            status_code=status_of(exc),
        )
    except RateLimited as exc:
        usage = await desk.get_user_usage(user_id)
        return await _list_page(
            request,
            current,
            user_id,
            form=values,
            alert=usage_refusal(exc, usage),
            status_code=status_of(exc),
        )
    runtime_of(request).metrics.created(job)
    return RedirectResponse(f"/jobs/{job.id}?done=created", status_code=303)


@router.get("/events")
async def list_events(request: Request) -> Response:
    """Server-Sent Events: the user's changed jobs as table rows (and new ones)."""
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return Response(status_code=status_of(Unauthorized))
    filters = ListFilters.of(request.query_params)
    return await open_list_stream(
        request,
        current,
        user_id,
        filters.matches,
        newest=request.query_params.get("after", ""),
    )


# -- one job -------------------------------------------------------------------------------


async def _job_page(
    request: Request,
    current: Visit,
    user_id: str,
    job_id: str,
    *,
    alert: str | None = None,
    status_code: int = 200,
) -> Response:
    desk = _desk(request)
    try:
        job = await desk.get_job_status(job_id, user_id)
    except (JobNotFound, InvalidInput):
        return not_found(current)
    history = await desk.get_job_history(job.id, user_id)
    notice = _NOTICES.get(request.query_params.get("done", ""))
    return current.finish(
        page(
            "job.html",
            status_code=status_code,
            visit=current,
            user_id=user_id,
            job=job,
            history=history,
            alert=alert,
            notice=None if alert else notice,
            can_cancel=job.status in _CANCELLABLE,
            can_retry=job.status in _RETRYABLE,
        )
    )


def not_found(current: Visit) -> Response:
    """The page for a job that is not there (or not the caller's: the same page)."""
    return error_page(
        current,
        status_of(JobNotFound),
        problem_type(JobNotFound).title,
        "There is no job with this id among your jobs.",
    )


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str) -> Response:
    """One job: input, result, error, attempts, timeline; cancel and retry."""
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return _to_sign_in(current)
    return await _job_page(request, current, user_id, job_id)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> Response:
    """Cancel a job; a refusal is shown on the job's page with its reason."""
    return await _act(request, job_id, "cancel")


@router.post("/jobs/{job_id}/retry")
async def retry_job(request: Request, job_id: str) -> Response:
    """Retry a job; a refusal (a limit, say) is shown on the job's page with its reason."""
    return await _act(request, job_id, "retry")


async def _act(request: Request, job_id: str, action: str) -> Response:
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return _to_sign_in(current)
    form = await _checked_form(request, current)
    if isinstance(form, Response):
        return form
    desk = _desk(request)
    try:
        if action == "cancel":
            job = await desk.cancel_job(job_id, user_id)
            runtime_of(request).metrics.cancelled(job)
        else:
            job = await desk.retry_job(job_id, user_id)
    except (JobNotFound, InvalidInput):
        return not_found(current)
    except InvalidTransition as exc:
        verb = "cancelled" if action == "cancel" else "retried"
        alert = f"Refused: a {exc.status} job cannot be {verb}."
        return await _job_page(
            request, current, user_id, job_id, alert=alert, status_code=status_of(exc)
        )
    except RateLimited as exc:
        alert = usage_refusal(exc, await desk.get_user_usage(user_id))
        return await _job_page(
            request, current, user_id, job_id, alert=alert, status_code=status_of(exc)
        )
    done = "cancelled" if action == "cancel" else "retried"
    return RedirectResponse(f"/jobs/{job.id}?done={done}", status_code=303)


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, job_id: str) -> Response:
    """Server-Sent Events: the job's live panel, re-rendered at each change."""
    current = await visit(request)
    user_id = _signed_in_user(current)
    if user_id is None:
        return Response(status_code=status_of(Unauthorized))
    try:
        job = await _desk(request).get_job_status(job_id, user_id)
    except (JobNotFound, InvalidInput):
        return Response(status_code=status_of(JobNotFound))
    return await open_job_stream(request, current, job)

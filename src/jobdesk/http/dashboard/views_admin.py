"""The operator's pages under ``/admin`` (admin tokens only): the queue, workers,
throughput, failures, the busiest users, the job types' pools and rates, and any job
or user by search, with that user's limits and weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from jobdesk import validation
from jobdesk.desk import JobDesk
from jobdesk.errors import InvalidInput, JobNotFound
from jobdesk.http.dashboard.render import error_page, page
from jobdesk.http.dashboard.session import (
    FormTooLarge,
    Visit,
    csrf_matches,
    read_form,
    visit,
)
from jobdesk.http.runtime import runtime_of
from jobdesk.ids import JOB_ID_PATTERN
from jobdesk.models import JobStatus, ThroughputMinute
from jobdesk.wire import problem_type, status_of

__all__ = ["Chart", "chart", "router"]

router = APIRouter(prefix="/admin", include_in_schema=False)

WINDOW = timedelta(hours=1)
FAILED_WINDOW = timedelta(days=1)
_CHART_WIDTH, _CHART_HEIGHT = 600, 120
#: each series has its own dash pattern as well as its colour
SERIES = (("created", "none"), ("completed", "6 3"), ("failed", "2 3"))


@dataclass(frozen=True, slots=True)
class Chart:
    """An SVG line chart of throughput: one polyline per series, and the totals."""

    width: int
    height: int
    peak: int
    #: (series name, dash pattern, SVG points, total)
    lines: list[tuple[str, str, str, int]]
    #: the minutes the chart spans (its x axis runs from that many minutes ago to now)
    minutes: int = 60

    @property
    def y_ticks(self) -> list[tuple[str, float]]:
        """The y axis' three labels, top down and evenly spaced (the page lays them out
        without inline styles): (jobs per minute, height in the SVG's units)."""
        return [(f"{value:g}", self.y(value)) for value in (self.peak, self.peak / 2, 0)]

    def y(self, value: float) -> float:
        """Where ``value`` jobs per minute sits, in the SVG's units (0 is the top)."""
        return self.height - value / self.peak * (self.height - 4)


def chart(minutes: list[ThroughputMinute]) -> Chart:
    """The throughput chart of ``minutes`` (oldest first)."""
    peak = max([1] + [max(m.created, m.completed, m.failed) for m in minutes])
    step = _CHART_WIDTH / max(1, len(minutes) - 1)
    lines = []
    for name, dash in SERIES:
        values = [getattr(minute, name) for minute in minutes]
        points = " ".join(
            f"{index * step:.1f},{_CHART_HEIGHT - value / peak * (_CHART_HEIGHT - 4):.1f}"
            for index, value in enumerate(values)
        )
        lines.append((name, dash, points, sum(values)))
    return Chart(_CHART_WIDTH, _CHART_HEIGHT, peak, lines, minutes=max(1, len(minutes)))


def _desk(request: Request) -> JobDesk:
    return runtime_of(request).require_desk()


def _refused(current: Visit) -> Response | None:
    if current.session is None:
        return current.finish(RedirectResponse("/signin", status_code=303))
    if current.session.kind != "admin":
        return error_page(
            current,
            403,
            "Admin token needed",
            (
                "The operator's pages need an admin token (jda_...). You are signed in "
                "with a user token: sign out and sign in with an admin token."
            ),
        )
    return None


#: the schedules the overview lists (by name); the CLI and the API list them all
SCHEDULES_SHOWN = 100


@router.get("")
async def overview(request: Request) -> Response:
    """Queue depth, oldest pending job, throughput, workers, failures, busiest users,
    types' limits, schedules and their next runs, the retention policy and its last pass."""
    current = await visit(request)
    refused = _refused(current)
    if refused is not None:
        return refused
    desk = _desk(request)
    stats = await desk.get_queue_stats(WINDOW)
    by_type: dict[str, dict[JobStatus, int]] = {}
    for count in stats.counts:
        by_type.setdefault(count.type, {})[count.status] = count.count
    oldest = await desk.get_oldest_pending()
    minutes = await desk.get_throughput(WINDOW)
    return current.finish(
        page(
            "admin.html",
            visit=current,
            stats=stats,
            by_type=by_type,
            oldest_age=None if oldest is None else (stats.at - oldest).total_seconds(),
            minutes=minutes,
            chart=chart(minutes),
            failed=await desk.get_failed_jobs(window=FAILED_WINDOW, limit=20),
            top_users=await desk.get_top_users(limit=10),
            type_limits=await desk.get_type_limits(),
            schedules=await desk.list_schedules(limit=SCHEDULES_SHOWN),
            retention_policy=runtime_of(request).settings.retention,
            retention_interval=runtime_of(request).settings.retention_interval_seconds,
            retention_state=await desk.get_retention_state(),
            query="",
            search_error=None,
        )
    )


@router.get("/search")
async def search(request: Request) -> Response:
    """Find a job by id, or a user by id."""
    current = await visit(request)
    refused = _refused(current)
    if refused is not None:
        return refused
    query = request.query_params.get("q", "").strip()
    if JOB_ID_PATTERN.fullmatch(query.upper()):
        return RedirectResponse(f"/admin/jobs/{query.upper()}", status_code=303)
    try:
        user_id = validation.principal_id("q", query)
    except InvalidInput:
        return error_page(
            current,
            status_of(InvalidInput),
            "Nothing to search for",
            "Search for a job id (26 characters) or a user id (1-128 characters).",
        )
    return RedirectResponse(f"/admin/users/{quote(user_id, safe='')}", status_code=303)


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str) -> Response:
    """Any user's job, read-only, with its timeline."""
    current = await visit(request)
    refused = _refused(current)
    if refused is not None:
        return refused
    desk = _desk(request)
    try:
        job = await desk.find_job(job_id)
    except (JobNotFound, InvalidInput):
        return error_page(
            current,
            status_of(JobNotFound),
            problem_type(JobNotFound).title,
            f"No job has the id {job_id!r}.",
        )
    history = await desk.get_job_history(job.id, job.user_id)
    return current.finish(page("admin_job.html", visit=current, job=job, history=history))


def _number(form: dict[str, str], name: str, kind: type[int] | type[float]) -> int | float | None:
    """A form field as the number the desk checks; empty is None (the default)."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        rule = "a whole number" if kind is int else "a number"
        raise InvalidInput(name, f"must be {rule}, or empty for the default") from None


def _whole(form: dict[str, str], name: str) -> int | None:
    value = _number(form, name, int)
    return None if value is None else int(value)


async def _admin_form(request: Request) -> tuple[Visit, dict[str, str]] | Response:
    """An operator's POST: the visit and its form, if an admin signed in, the form fits
    the body limit and carries the session's CSRF token; else the page that says why."""
    current = await visit(request)
    refused = _refused(current)
    if refused is not None:
        return refused
    try:
        form = await read_form(request)
    except FormTooLarge:
        return error_page(current, 413, "Form too large", "The form was too large.")
    if not csrf_matches(request, current, form):
        return error_page(current, 403, "Form expired", "Reload the page and try again.")
    return current, form


@router.post("/users/{user_id:path}/limits")
async def set_user_limits(request: Request, user_id: str) -> Response:
    """Set a user's limits and weight from the form on their page."""
    checked = await _admin_form(request)
    if isinstance(checked, Response):
        return checked
    current, form = checked
    try:
        await _desk(request).set_user_limits(
            user_id,
            max_running=_whole(form, "max_running"),
            max_waiting=_whole(form, "max_waiting"),
            max_daily=_whole(form, "max_daily"),
            weight=_number(form, "weight", float),
        )
    except InvalidInput as exc:
        return await _user_page(
            request, current, user_id, form=form, errors={exc.field: exc.rule}, status_code=422
        )
    return RedirectResponse(f"/admin/users/{quote(user_id, safe='')}?done=limits", status_code=303)


@router.post("/types/limits")
async def set_type_limits(request: Request) -> Response:
    """Set (or, with both fields empty, remove) the pool and rate of the form's type."""
    checked = await _admin_form(request)
    if isinstance(checked, Response):
        return checked
    current, form = checked
    rate = form.get("rate", "").strip() or None
    try:
        pool = _whole(form, "max_running")
        await _desk(request).set_type_limits(form.get("type", ""), max_running=pool, rate=rate)
    except InvalidInput as exc:
        return error_page(current, status_of(exc), "Limits not set", str(exc))
    return RedirectResponse("/admin#types-title", status_code=303)


@router.get("/users/{user_id:path}")  # a user id may hold a "/"
async def user_page(request: Request, user_id: str) -> Response:
    """One user's usage, limits and jobs, newest first, a page at a time."""
    current = await visit(request)
    refused = _refused(current)
    if refused is not None:
        return refused
    return await _user_page(request, current, user_id)


async def _user_page(
    request: Request,
    current: Visit,
    user_id: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    desk = _desk(request)
    try:
        usage = await desk.get_user_usage(user_id)
        jobs = await desk.get_user_jobs(
            user_id, limit=50, cursor=request.query_params.get("cursor") or None
        )
    except InvalidInput as exc:
        return error_page(current, status_of(exc), "Bad request", str(exc))
    done = request.query_params.get("done") == "limits" and form is None
    return current.finish(
        page(
            "admin_user.html",
            status_code=status_code,
            visit=current,
            usage=usage,
            jobs=jobs.items,
            page=jobs,
            limits_form=form or {},
            form_errors=errors or {},
            alert="The limits were not saved: see the field below." if errors else None,
            notice="Limits saved." if done else None,
        )
    )

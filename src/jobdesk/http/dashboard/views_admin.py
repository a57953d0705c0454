"""The operator's pages under ``/admin`` (admin tokens only): the queue, workers,
throughput, failures, the busiest users, and any job or user by search.
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
from jobdesk.http.dashboard.session import Visit, visit
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
    return Chart(_CHART_WIDTH, _CHART_HEIGHT, peak, lines)


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


@router.get("")
async def overview(request: Request) -> Response:
    """Queue depth, oldest pending job, throughput, workers, failures, busiest users."""
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


@router.get("/users/{user_id:path}")  # a user id may hold a "/"
async def user_page(request: Request, user_id: str) -> Response:
    """One user's usage and jobs, newest first, a page at a time."""
    current = await visit(request)
    refused = _refused(current)
    if refused is not None:
        return refused
    desk = _desk(request)
    try:
        usage = await desk.get_user_usage(user_id)
        jobs = await desk.get_user_jobs(
            user_id, limit=50, cursor=request.query_params.get("cursor") or None
        )
    except InvalidInput as exc:
        return error_page(current, status_of(exc), "Bad request", str(exc))
    return current.finish(
        page("admin_user.html", visit=current, usage=usage, jobs=jobs.items, page=jobs)
    )

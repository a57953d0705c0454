"""Live pages: Server-Sent Events carrying HTML that htmx (htmx-ext-sse) swaps in.

Fed by the app's one :class:`~jobdesk.http.broadcast.Broadcaster`, like the API's
streams: nothing polls. Each change to one of the user's jobs is read back from the
database (the database has the last word: a stream always ends on a job's latest
state) and rendered:

- the list stream sends ``job-<id>`` with the cells of the job's table row, which
  replace those of the row of that id if the page shows it, and ``created`` with the
  whole row of a job newer than the page's newest that matches the page's filters,
  which htmx prepends;
- a job's stream sends ``job`` with the job's live panel (status, progress, actions,
  result, error, timeline).

On ``RESYNC`` (the feed may have missed changes; on SQLite, another process wrote)
the jobs changed since the last one seen are read again.

A change costs one read and one render however many streams show the job (the
broadcaster's :class:`~jobdesk.http.broadcast.Shared`): the panel is rendered with a
placeholder for the CSRF token, which each stream puts in. The streams count
against the user's cap and end when the session's token stops verifying, like the
API's.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from jobdesk.changes import JobChange
from jobdesk.desk import JobDesk
from jobdesk.errors import JobdeskError, JobNotFound
from jobdesk.http.auth import CREDENTIAL_KEY, credential_for
from jobdesk.http.broadcast import Listener, Shared, Signal
from jobdesk.http.dashboard.render import fragment
from jobdesk.http.dashboard.session import Visit
from jobdesk.http.runtime import runtime_of
from jobdesk.http.settings import Settings
from jobdesk.http.sse import KEEPALIVE, EventStreamResponse
from jobdesk.models import Action, Job, sources

__all__ = ["html_event", "open_job_stream", "open_list_stream"]

_log = logging.getLogger("jobdesk.http.dashboard")
_SENT_LIMIT = 10_000
_REPLAY_PAGES = 10
_PAGE = 100

# Unguessable, so no job's data can contain it and have the CSRF token put in its place.
_CSRF_PLACEHOLDER = secrets.token_hex(16)
# What a shared render sees of the visit: the fragments read only its CSRF token.
_SHARED_VISIT = Visit(None, "", False, _CSRF_PLACEHOLDER, False)

Render = Callable[[Job], Awaitable[list[bytes]]]


def _state(job: Job) -> tuple[object, ...]:
    """What a fragment of ``job`` shows changes only with this."""
    return (
        job.id,
        job.updated_at,
        job.status,
        job.progress,
        job.progress_message,
        job.attempt,
        job.cancel_requested,
    )


def html_event(name: str, html: str) -> bytes:
    """One SSE event whose data is ``html`` (one ``data:`` line per line of it)."""
    lines = html.splitlines() or [""]
    data = "".join(f"data: {line}\n" for line in lines)
    return f"event: {name}\n{data}\n".encode()


async def open_list_stream(
    request: Request,
    current: Visit,
    user_id: str,
    matches: Callable[[Job], bool],
    *,
    newest: str,
) -> Response:
    """The stream of a job list page: changed rows, and new jobs that match its filters."""
    announced: set[str] = set()
    shared = runtime_of(request).broadcaster.shared

    async def render(job: Job) -> list[bytes]:
        if job.id > newest and job.id not in announced and matches(job):
            announced.add(job.id)
            return [html_event("created", fragment("row.html", job=job, visit=current))]

        # The cells only: the row stays in place, and so does its subscription (htmx
        # would drop an event that came while it swapped the whole row).
        async def cells() -> bytes:
            html = fragment("row_cells.html", job=job, visit=_SHARED_VISIT)
            return html_event(f"job-{job.id}", html)

        return [await shared.once(("row_cells", *_state(job)), cells)]

    return await _open(request, current, user_id, lambda job_id: True, render)


async def open_job_stream(request: Request, current: Visit, job: Job) -> Response:
    """The stream of one job's page: its live panel at each change."""
    runtime = runtime_of(request)
    desk = runtime.require_desk()
    shared = runtime.broadcaster.shared
    csrf = current.csrf_token.encode()

    async def render(changed: Job) -> list[bytes]:
        async def panel() -> bytes:
            history = await desk.get_job_history(changed.id, changed.user_id)
            html = fragment(
                "job_live.html",
                job=changed,
                history=history,
                visit=_SHARED_VISIT,
                can_cancel=changed.status in sources(Action.CANCEL),
                can_retry=changed.status in sources(Action.RETRY),
            )
            return html_event("job", html)

        event = await shared.once(("job_live", *_state(changed)), panel)
        return [event.replace(_CSRF_PLACEHOLDER.encode(), csrf)]

    return await _open(request, current, job.user_id, lambda job_id: job_id == job.id, render)


async def _open(
    request: Request,
    current: Visit,
    user_id: str,
    wanted: Callable[[str], bool],
    render: Render,
) -> Response:
    runtime = runtime_of(request)
    desk = runtime.require_desk()
    if current.session is not None:
        holder = f"{current.session.kind}:{current.session.subject}"
        request.scope[CREDENTIAL_KEY] = credential_for(runtime, current.session.token, holder)
    listener = await runtime.broadcaster.listener(user_id)
    try:
        connected_at = await desk.now()
    except BaseException:
        listener.close()
        raise
    events = _events(
        desk,
        listener,
        runtime.settings,
        runtime.broadcaster.shared,
        user_id=user_id,
        wanted=wanted,
        render=render,
        connected_at=connected_at,
    )
    return EventStreamResponse(events, listener, runtime.metrics, runtime.settings)


async def _events(
    desk: JobDesk,
    listener: Listener,
    settings: Settings,
    shared: Shared,
    *,
    user_id: str,
    wanted: Callable[[str], bool],
    render: Render,
    connected_at: datetime,
) -> AsyncGenerator[bytes, None]:
    overlap = timedelta(seconds=settings.sse_resume_overlap_seconds)
    high_water = connected_at
    sent: dict[str, tuple[object, ...]] = {}
    try:
        while True:
            item = await listener.next(settings.sse_keepalive_seconds)
            if item is None:
                yield KEEPALIVE
                continue
            if item is Signal.CLOSED:
                return
            jobs: list[Job] = []
            if item is Signal.RESYNC:
                jobs = await _changed_since(desk, user_id, high_water - overlap)
            elif isinstance(item, JobChange) and wanted(item.job_id):
                try:
                    # Every stream of the user gets this change now: one read for all.
                    read = functools.partial(desk.get_job_status, item.job_id, user_id)
                    jobs = [await shared.once(("job", user_id, item), read)]
                except JobNotFound:
                    continue  # pruned meanwhile
            for job in jobs:
                high_water = max(high_water, job.updated_at)
                state = (job.updated_at, job.status, job.progress, job.progress_message)
                if not wanted(job.id) or sent.get(job.id) == state:
                    continue
                if len(sent) >= _SENT_LIMIT:
                    sent.clear()
                sent[job.id] = state
                for chunk in await render(job):
                    yield chunk
    except JobdeskError as exc:
        _log.warning("ending a dashboard event stream of user %s: %s", user_id, exc)


async def _changed_since(desk: JobDesk, user_id: str, since: datetime) -> list[Job]:
    found: dict[str, Job] = {}
    for _ in range(_REPLAY_PAGES):
        batch = await desk.get_user_jobs_changed_since(user_id, since, limit=_PAGE)
        found.update((job.id, job) for job in batch)
        if len(batch) < _PAGE or batch[-1].updated_at == since:
            break
        since = batch[-1].updated_at
    return sorted(found.values(), key=lambda job: (job.updated_at, job.id))

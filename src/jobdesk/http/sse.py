"""Server-Sent Events: live job changes for a user, fed by the store's change feed.

Streams are fed by the app's :class:`~jobdesk.http.broadcast.Broadcaster`: no
stream polls the database.

Each event is the job's state (``event: job``; on one job's stream a pending job's
state also says why it waits, as of that change) with the id
``<updated_at in microseconds since 1970>-<job id>-<status>``. A client that reconnects
with ``Last-Event-ID`` gets the current state of every job that changed since
then, before live changes: for a stream of states that leaves no gap. On
``RESYNC`` (the feed may have missed changes) a stream re-reads in the same way.

Every stream (the API's, a worker's, the dashboard's) checks the credential that
opened it again every ``sse_recheck_seconds`` and at a JWT's ``exp``; when it no
longer holds, the stream sends a last ``end`` event (``{"reason", "detail"}``) and
closes. One user, or one worker token, holds at most ``max_streams`` streams open:
the next is refused with 429 and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from jobdesk import wire
from jobdesk.changes import JobChange
from jobdesk.desk import JobDesk
from jobdesk.errors import InvalidInput, JobdeskError, JobNotFound
from jobdesk.http.auth import CREDENTIAL_KEY, Credential
from jobdesk.http.broadcast import Broadcaster, Listener, Signal
from jobdesk.http.metrics import Metrics
from jobdesk.http.problems import problem_response
from jobdesk.http.settings import Settings
from jobdesk.models import Job, JobStatus, Waiting

__all__ = [
    "EventStreamResponse",
    "encode_change",
    "encode_ready",
    "event_id",
    "open_job_stream",
    "open_user_stream",
    "open_work_stream",
    "parse_event_id",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEEPALIVE = b": keepalive\n\n"
_EVENT_ID = re.compile(r"(\d{1,17})-([0-9A-Z]{26})-([a-z]{1,16})")
_SEEN_LIMIT = 10_000
_log = logging.getLogger("jobdesk.http.sse")


# -- events --------------------------------------------------------------------------------


def event_id(change: JobChange) -> str:
    """``<updated_at in microseconds since 1970>-<job id>-<status>``."""
    micros = (change.updated_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{change.job_id}-{change.status.value}"


def parse_event_id(value: str) -> tuple[datetime, str, str]:
    """``(updated_at, job_id, status)`` of an event id, or :class:`InvalidInput`."""
    match = _EVENT_ID.fullmatch(value.strip())
    if match is None:
        raise InvalidInput(
            "Last-Event-ID",
            "must be the id of an event this API sent (<microseconds>-<job id>-<status>)",
        )
    try:
        updated_at = EPOCH + timedelta(microseconds=int(match.group(1)))
    except OverflowError:
        raise InvalidInput("Last-Event-ID", "names a time out of range") from None
    return updated_at, match.group(2), match.group(3)


@functools.lru_cache(maxsize=4096)
def _state(change: JobChange, waiting: Waiting | None = None, **more: object) -> str:
    """The job's state after ``change``, as an event's JSON data."""
    data: dict[str, object] = {
        "id": change.job_id,
        **more,
        "type": change.type,
        "status": change.status.value,
        "progress": change.progress,
        "progress_message": change.progress_message,
        "attempt": change.attempt,
        "updated_at": wire.timestamp(change.updated_at),
    }
    if waiting is not None:
        data["waiting"] = wire.encode_waiting(waiting)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode_change(change: JobChange, waiting: Waiting | None = None) -> bytes:
    """One ``job`` event (with why the job waits, if given); encoded once however many
    streams send it."""
    data = _state(change, waiting)
    return f"id: {event_id(change)}\nevent: job\ndata: {data}\n\n".encode()


def encode_ready(change: JobChange) -> bytes:
    """One ``ready`` event of a worker's stream: a job of its types became pending.

    Without the job's user: a worker needs the job, not whose it is, and a stream
    of every user's new jobs would otherwise be a directory of the users.
    """
    return f"event: ready\ndata: {_state(change)}\n\n".encode()


def _resync_event(reason: str) -> bytes:
    return f"event: resync\ndata: {json.dumps({'reason': reason})}\n\n".encode()


def _end_event(reason: str, detail: str) -> bytes:
    data = json.dumps({"reason": reason, "detail": detail}, ensure_ascii=False)
    return f"event: end\ndata: {data}\n\n".encode()


class EventStreamResponse(Response):
    """A ``text/event-stream`` that ends when its events end, the client goes away, or
    the credential that opened it stops holding.

    The credential is the one the request was authenticated with (its scope's
    ``CREDENTIAL_KEY``); a response without one is neither capped nor re-checked.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        listener: Listener,
        metrics: Metrics,
        settings: Settings,
    ) -> None:
        self._events = events
        self._listener = listener
        self._prepare(metrics, settings, listener.broadcaster)

    def _prepare(self, metrics: Metrics, settings: Settings, broadcaster: Broadcaster) -> None:
        self.status_code, self.background = 200, None
        self._metrics, self._settings = metrics, settings
        self._slots, self._guards = broadcaster.slots, broadcaster.guards
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _body(self, send: Send) -> None:
        """Send the stream's events (a subclass may be fed otherwise)."""
        async for chunk in self._events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _release(self) -> None:
        """Let go of what feeds the stream (it ended, or was refused)."""
        await self._events.aclose()
        self._listener.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        credential: Credential | None = scope.get(CREDENTIAL_KEY)
        slots, limit = self._slots, self._settings.max_streams
        if credential is not None and not slots.take(credential.holder, limit):
            await self._release()
            await self._refusal(scope)(scope, receive, send)
            return
        self._metrics.event_streams.inc()
        ended: list[bytes] = []
        started = False
        try:
            with anyio.CancelScope() as cancel_scope:

                def end(reason: str, detail: str) -> None:
                    ended.append(_end_event(reason, detail))
                    cancel_scope.cancel()

                watcher = asyncio.create_task(_cancel_on_disconnect(receive, cancel_scope))
                watch = None
                if credential is not None:
                    every = self._settings.sse_recheck_seconds
                    watch = self._guards.watch(credential, every, end)
                try:
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                    )
                    started = True
                    await self._body(send)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                finally:
                    watcher.cancel()
                    if watch is not None:
                        watch.close()
            if ended:
                if not started:
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                    )
                await send({"type": "http.response.body", "body": ended[0], "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write (what ASGI 2.4 servers raise)
        finally:
            await self._release()
            self._metrics.event_streams.dec()
            if credential is not None:
                slots.give_back(credential.holder)

    def _refusal(self, scope: Scope) -> Response:
        limit = self._settings.max_streams
        return problem_response(
            scope,
            429,
            title="Too Many Requests",
            detail=f"at most {limit} event streams may be open at once for one user or "
            "worker token: close one (or share one stream between tabs) and retry",
            headers={"Retry-After": str(self._settings.active_limit_retry_after_seconds)},
            extensions={"limit": "streams", "allowed": limit},
        )


async def _cancel_on_disconnect(receive: Receive, cancel_scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    cancel_scope.cancel()


# -- the two streams -----------------------------------------------------------------------

Reread = Callable[[str], Awaitable[JobChange | None]]


class _Sent:
    """The last state each job's stream sent, and what to make of the next one.

    The feed delivers a job's changes in commit order, but a stream also reads
    states from the database (at the start, on resume, on RESYNC), and those reads
    race with changes already queued. ``updated_at`` cannot settle the race alone: on
    PostgreSQL it is the time a transaction *began*, so a later commit may carry an
    earlier time. So a change that is not clearly newer than what was sent is
    settled by reading the job again: the database has the last word, and a
    stream always ends on the job's latest state.
    """

    def __init__(self, reread: Reread) -> None:
        self._reread = reread
        self._last: dict[str, JobChange] = {}

    def record(self, change: JobChange) -> JobChange:
        """Remember ``change`` as sent."""
        if len(self._last) >= _SEEN_LIMIT:
            self._last.clear()
        self._last[change.job_id] = change
        return change

    async def settle(self, change: JobChange) -> JobChange | None:
        """What to send for a change from the feed: itself, a fresher read, or nothing."""
        last = self._last.get(change.job_id)
        if last is None or change.updated_at > last.updated_at:
            return self.record(change)
        if change == last:
            return None
        current = await self._reread(change.job_id)
        if current is None or current == last:
            return None
        return self.record(current)

    def unsent(self, change: JobChange) -> JobChange | None:
        """A state read from the database, unless it was the last one sent."""
        return None if self._last.get(change.job_id) == change else self.record(change)


def _rereader(desk: JobDesk, user_id: str) -> Reread:
    async def reread(job_id: str) -> JobChange | None:
        try:
            return JobChange.of(await desk.get_job_status(job_id, user_id))
        except JobNotFound:
            return None  # pruned meanwhile

    return reread


async def open_job_stream(
    desk: JobDesk,
    broadcaster: Broadcaster,
    settings: Settings,
    metrics: Metrics,
    *,
    user_id: str,
    job_id: str,
    last_event_id: str | None,
) -> Response:
    """The stream of one of the user's jobs; it ends after a terminal status.

    404 before anything streams for a job that is not the user's; 204 (which
    tells a browser's EventSource to stop reconnecting) when the client's last
    event was the job's final state.
    """
    resumed_from = None if last_event_id is None else parse_event_id(last_event_id)
    # Listen first, read second: a change between the two is then never lost.
    listener = await broadcaster.listener(user_id)
    try:
        job = await desk.get_job_status(job_id, user_id)
    except BaseException:
        listener.close()
        raise
    if job.status.is_finished and resumed_from == (job.updated_at, job.id, job.status.value):
        listener.close()
        return Response(status_code=204)
    events = _job_events(desk, listener, settings, JobChange.of(job), job.waiting)
    return EventStreamResponse(events, listener, metrics, settings)


async def _waiting(desk: JobDesk, change: JobChange) -> Waiting | None:
    """Why the job of a pending change waits now (the feed's changes do not say)."""
    if change.status is not JobStatus.PENDING:
        return None
    try:
        return (await desk.get_job_status(change.job_id, change.user_id)).waiting
    except JobNotFound:
        return None  # pruned meanwhile


async def _job_events(
    desk: JobDesk,
    listener: Listener,
    settings: Settings,
    current: JobChange,
    waiting: Waiting | None,
) -> AsyncGenerator[bytes, None]:
    reread = _rereader(desk, current.user_id)
    sent = _Sent(reread)
    change: JobChange | None = sent.record(current)
    try:
        while change is None or not change.status.is_finished:
            if change is not None:
                yield encode_change(change, waiting)
            item = await listener.next(settings.sse_keepalive_seconds)
            change = None
            if item is None:
                yield KEEPALIVE
            elif item is Signal.CLOSED:
                return
            elif item is Signal.RESYNC:
                fresh = await reread(current.job_id)
                if fresh is None:
                    return
                change = sent.unsent(fresh)
            elif isinstance(item, JobChange) and item.job_id == current.job_id:
                change = await sent.settle(item)
            waiting = None if change is None else await _waiting(desk, change)
        yield encode_change(change)
    except JobdeskError as exc:
        _log.warning("ending the event stream of job %s: %s", current.job_id, exc)


async def open_user_stream(
    desk: JobDesk,
    broadcaster: Broadcaster,
    settings: Settings,
    metrics: Metrics,
    *,
    user_id: str,
    last_event_id: str | None,
) -> Response:
    """The stream of every job of the user; it never ends by itself."""
    since = None if last_event_id is None else parse_event_id(last_event_id)[0]
    listener = await broadcaster.listener(user_id)
    try:
        connected_at = await desk.now()
    except BaseException:
        listener.close()
        raise
    events = _user_events(
        desk, listener, settings, user_id=user_id, since=since, connected_at=connected_at
    )
    return EventStreamResponse(events, listener, metrics, settings)


async def _user_events(
    desk: JobDesk,
    listener: Listener,
    settings: Settings,
    *,
    user_id: str,
    since: datetime | None,
    connected_at: datetime,
) -> AsyncGenerator[bytes, None]:
    overlap = timedelta(seconds=settings.sse_resume_overlap_seconds)
    sent = _Sent(_rereader(desk, user_id))
    high_water = connected_at if since is None else since

    async def replay(after: datetime) -> AsyncIterator[bytes]:
        jobs, complete = await _changed_since(desk, user_id, after, settings.sse_resume_scan_limit)
        for job in jobs:
            change = sent.unsent(JobChange.of(job))
            if change is not None:
                yield encode_change(change)
        if not complete:
            yield _resync_event("too many jobs changed to replay: list them again")

    try:
        if since is not None:
            async for chunk in replay(since - overlap):
                yield chunk
        while True:
            item = await listener.next(settings.sse_keepalive_seconds)
            if item is None:
                yield KEEPALIVE
            elif item is Signal.CLOSED:
                return
            elif item is Signal.RESYNC:
                async for chunk in replay(high_water - overlap):
                    yield chunk
            elif isinstance(item, JobChange):
                high_water = max(high_water, item.updated_at)
                change = await sent.settle(item)
                if change is not None:
                    yield encode_change(change)
    except JobdeskError as exc:
        _log.warning("ending the event stream of user %s: %s", user_id, exc)


async def _changed_since(
    desk: JobDesk, user_id: str, since: datetime, limit: int
) -> tuple[list[Job], bool]:
    """The user's jobs changed since ``since`` (at most ``limit``), and whether that is all."""
    found: dict[str, Job] = {}
    while len(found) < limit:
        page = await desk.get_user_jobs_changed_since(user_id, since, limit=100)
        fresh = [job for job in page if job.id not in found]
        found.update((job.id, job) for job in page)
        if len(page) < 100:
            return sorted(found.values(), key=lambda job: (job.updated_at, job.id)), True
        if not fresh:
            break  # over 100 jobs changed at one instant: no next page to ask for
        since = page[-1].updated_at
    return sorted(found.values(), key=lambda job: (job.updated_at, job.id)), False


async def open_work_stream(
    broadcaster: Broadcaster,
    settings: Settings,
    metrics: Metrics,
    *,
    types: frozenset[str] | None,
) -> Response:
    """A remote worker's wake-ups: ``ready`` when a job of ``types`` becomes pending.

    Only a hint, like NOTIFY: ``resync`` says some may have been missed, and a
    worker keeps polling whatever it hears. Nothing is replayed on reconnection.
    """
    listener = await broadcaster.work_listener(types)
    return EventStreamResponse(_work_events(listener, settings), listener, metrics, settings)


async def _work_events(listener: Listener, settings: Settings) -> AsyncGenerator[bytes, None]:
    yield _resync_event("connected: claim what is already due")
    while True:
        item = await listener.next(settings.sse_keepalive_seconds)
        if item is None:
            yield KEEPALIVE
        elif item is Signal.CLOSED:
            return
        elif item is Signal.RESYNC:
            yield _resync_event("changes may have been missed: claim again")
        elif isinstance(item, JobChange):
            yield encode_ready(item)

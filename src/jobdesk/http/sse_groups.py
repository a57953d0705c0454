"""Server-Sent Events for a group: the group's progress and each of its jobs' changes.

One stream per group (``GET /api/v1/groups/{id}/events``), fed like every other
stream by the app's :class:`~jobdesk.http.broadcast.Broadcaster` (no polling).
It starts with a ``group`` event (the group's state: status, progress, counts),
then, for each change of one of its jobs, a ``job`` event (the job's state, as on a
job's own stream) followed by a ``group`` event with the figures as they now stand.
The figures are kept change by change by :class:`jobdesk.groups.GroupTally`, the
same rule :func:`jobdesk.groups.summarize` that ``GET /groups/{id}`` answers with.
The stream ends after the ``group`` event of a finished group (read once more from
the database, so that the last word is the stored one).

Only ``group`` events carry an id: ``<sequence>-<group id>-<status>``. A client that
reconnects gets the group's current state at once (a state, not a delta, so nothing
is missed); one whose last event was the finished group's gets 204 (which stops a
browser's EventSource).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import AsyncGenerator

from starlette.responses import Response

from jobdesk.changes import JobChange
from jobdesk.desk import JobDesk
from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.groups import MAX_GROUP_JOBS, Group, GroupStatus, GroupTally
from jobdesk.http.broadcast import Broadcaster, Listener, Signal
from jobdesk.http.metrics import Metrics
from jobdesk.http.settings import Settings
from jobdesk.http.sse import KEEPALIVE, EventStreamResponse, encode_change
from jobdesk.models import Job, JobStatus

__all__ = ["encode_group_state", "open_group_stream"]

_EVENT_ID = re.compile(r"(\d{1,12})-([0-9A-Z]{26})-([a-z_]{1,20})")
_PAGE = 1000
_log = logging.getLogger("jobdesk.http.sse")


def encode_group_state(
    group_id: str,
    sequence: int,
    status: GroupStatus,
    progress: float,
    counts: dict[JobStatus, int],
) -> bytes:
    """One ``group`` event: the group's status, progress and counts."""
    data = _group_data(
        group_id, status, progress, tuple((job_status.value, n) for job_status, n in counts.items())
    )
    return f"id: {sequence}-{group_id}-{status.value}\nevent: group\ndata: {data}\n\n".encode()


# One change reaches every follower of the group at once, and each would render the
# same JSON: rendered once (a follower's own part is its event id's sequence).
@functools.lru_cache(maxsize=1024)
def _group_data(
    group_id: str, status: GroupStatus, progress: float, counts: tuple[tuple[str, int], ...]
) -> str:
    return json.dumps(
        {
            "id": group_id,
            "status": status.value,
            "progress": progress,
            "size": sum(count for _, count in counts),
            "counts": dict(counts),
        },
        separators=(",", ":"),
    )


@functools.lru_cache(maxsize=1024)
def _change_event(change: JobChange) -> bytes:
    return encode_change(change)


def _final(group: Group, sequence: int) -> bytes:
    return encode_group_state(group.id, sequence, group.status, group.progress, dict(group.counts))


async def _tally(desk: JobDesk, group: Group) -> tuple[GroupTally, dict[str, Job]]:
    """A tally of the group's jobs as stored now, and the jobs by id."""
    jobs: list[Job] = []
    while len(jobs) < MAX_GROUP_JOBS:
        page = await desk.get_group_jobs(group.id, group.user_id, offset=len(jobs), limit=_PAGE)
        jobs.extend(page)
        if len(page) < _PAGE:
            break
    tally = GroupTally(
        ((job.id, job.status, job.progress) for job in jobs),
        cancelled=group.cancelled_at is not None,
    )
    return tally, {job.id: job for job in jobs}


async def open_group_stream(
    desk: JobDesk,
    broadcaster: Broadcaster,
    settings: Settings,
    metrics: Metrics,
    *,
    user_id: str,
    group_id: str,
    last_event_id: str | None,
) -> Response:
    """The stream of one of the user's groups; it ends once the group has finished.

    404 before anything streams for a group that is not the user's; 204 when the
    client's last event was the finished group's.
    """
    resumed_status = None
    if last_event_id is not None:
        match = _EVENT_ID.fullmatch(last_event_id.strip())
        if match is None:
            raise InvalidInput("Last-Event-ID", "must be the id of a group event this API sent")
        resumed_status = match.group(3) if match.group(2) == group_id else None
    # Listen first, read second: a change between the two is then never lost.
    listener = await broadcaster.listener(user_id)
    try:
        group = await desk.get_group(group_id, user_id)
        if group.status.is_finished and resumed_status == group.status.value:
            listener.close()
            return Response(status_code=204)
        tally, jobs = await _tally(desk, group)
    except BaseException:
        listener.close()
        raise
    events = _group_events(desk, listener, settings, group, tally=tally, jobs=jobs)
    return EventStreamResponse(events, listener, metrics, settings)


async def _group_events(
    desk: JobDesk,
    listener: Listener,
    settings: Settings,
    group: Group,
    *,
    tally: GroupTally,
    jobs: dict[str, Job],
) -> AsyncGenerator[bytes, None]:
    seen = {job_id: job.updated_at for job_id, job in jobs.items()}
    sequence = 1
    change = b""
    try:
        status, progress, counts = tally.summary()
        yield encode_group_state(group.id, sequence, status, progress, counts)
        while not status.is_finished:
            item = await listener.next(settings.sse_keepalive_seconds)
            if item is None:
                yield KEEPALIVE
                continue
            if item is Signal.CLOSED:
                return
            if item is Signal.RESYNC:
                fresh = await desk.get_group(group.id, group.user_id)
                tally, jobs = await _tally(desk, fresh)
                seen = {job_id: job.updated_at for job_id, job in jobs.items()}
            elif isinstance(item, JobChange) and item.job_id in tally:
                if item.updated_at < seen[item.job_id]:
                    continue  # older than the state already counted
                seen[item.job_id] = item.updated_at
                if not tally.apply(item.job_id, item.status, item.progress):
                    continue
                change = _change_event(item)
            else:
                continue
            sequence += 1
            status, progress, counts = tally.summary()
            if status.is_finished:
                if change:
                    yield change
            else:
                # The job's event and the group's in one write.
                yield change + encode_group_state(group.id, sequence, status, progress, counts)
            change = b""
        # The stored word on the finished group (a cancel_group, say, names it cancelled).
        yield _final(await desk.get_group(group.id, group.user_id), sequence)
    except JobdeskError as exc:
        _log.warning("ending the event stream of group %s: %s", group.id, exc)

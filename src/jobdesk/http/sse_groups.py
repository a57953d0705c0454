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

Every stream of one group in one process is fed by one :class:`GroupFeed`: one
listener, one tally applied once per change, each event rendered once and written to
every stream by the feed's task (:mod:`jobdesk.http.fanout`); the first stream of a
group reads the group, the next ones join the feed as it stands. The feed ends when
its last stream does.

Only ``group`` events carry an id: ``<sequence>-<group id>-<status>``, the sequence
counting the feed's states (so unique on a stream, and never smaller than the one
before it). A client that reconnects gets the group's current state at once (a state,
not a delta, so nothing is missed); one whose last event was the finished group's
gets 204 (which stops a browser's EventSource). Resuming reads only the id's status.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re

from starlette.responses import Response
from starlette.types import Send

from jobdesk.changes import JobChange
from jobdesk.desk import JobDesk
from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.groups import MAX_GROUP_JOBS, Group, GroupStatus, GroupTally
from jobdesk.http.broadcast import Broadcaster, Listener, Signal
from jobdesk.http.fanout import Follower
from jobdesk.http.metrics import Metrics
from jobdesk.http.settings import Settings
from jobdesk.http.sse import KEEPALIVE, EventStreamResponse, encode_change
from jobdesk.models import Job, JobStatus

__all__ = ["GroupFeed", "GroupFeeds", "encode_group_state", "open_group_stream"]

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


# A feed renders each state once; cached as well, so that the final state (rendered from
# the stored group) and a feed started again on an unchanged group reuse the JSON.
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
    # Without the job's id line: EventSource keeps the last id it was sent, and a group
    # stream resumes from a group event's (the job event before a group's final one
    # would otherwise be what a connection cut between the two reconnects with).
    event = encode_change(change)
    return event[event.index(b"\n") + 1 :]


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


class GroupFeed:
    """The state of one group and its changes, for every stream of it in this process."""

    def __init__(self, feeds: GroupFeeds, user_id: str, group_id: str) -> None:
        self._feeds = feeds
        self._user_id = user_id
        self._group_id = group_id
        self._followers: set[Follower] = set()
        #: streams that asked for this feed and have not joined yet (it waits for them)
        self._expected = 0
        self._sequence = 1
        self._state = b""
        self._finished = False
        #: resolved once the group is read (or with why it could not be)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"jobdesk-group-feed-{group_id}")

    @property
    def key(self) -> tuple[str, str]:
        """The feed's user and group."""
        return self._user_id, self._group_id

    def expect(self) -> None:
        """A stream will join (or :meth:`release`): the feed stays for it."""
        self._expected += 1

    def release(self) -> None:
        """A stream that was expected will not join after all."""
        self._expected -= 1
        self._close_if_idle()

    def join(self, follower: Follower) -> None:
        """An expected stream joins: it is sent the group's state now, then each change."""
        self._expected -= 1
        follower.write(self._state)
        if self._finished:
            follower.end()
        else:
            self._followers.add(follower)

    def leave(self, follower: Follower) -> None:
        """A stream ended (its client went away, or its credential stopped holding)."""
        self._followers.discard(follower)
        self._close_if_idle()

    def current(self) -> bytes:
        """The group's state as last sent (for a stream that fell behind)."""
        return self._state

    def stop(self) -> None:
        """End the feed and its streams (their clients reconnect)."""
        self._task.cancel()

    def _close_if_idle(self) -> None:
        if not self._followers and self._expected <= 0 and not self._finished:
            self.stop()

    def _write(self, chunk: bytes) -> None:
        for follower in self._followers:
            follower.write(chunk)

    def _end(self) -> None:
        self._finished = True
        for follower in self._followers:
            follower.end()
        self._followers.clear()

    async def _run(self) -> None:
        desk, settings = self._feeds.desk, self._feeds.settings
        listener = None
        try:
            # Listen first, read second: a change between the two is then never lost.
            listener = await self._feeds.broadcaster.listener(self._user_id)
            group = await desk.get_group(self._group_id, self._user_id)
            tally, jobs = await _tally(desk, group)
            status, progress, counts = tally.summary()
            if status.is_finished:
                self._state = _final(group, self._sequence)
                self._finished = True
            else:
                self._state = encode_group_state(group.id, 1, status, progress, counts)
            self.ready.set_result(None)
            if not self._finished:
                await self._follow(listener, settings, group, tally, jobs)
        except Exception as exc:
            if not self.ready.done():  # the streams waiting for the feed answer with it
                self.ready.set_exception(exc)
                self.ready.exception()  # retrieved: raised to each of them
            elif isinstance(exc, JobdeskError):
                _log.warning("ending the event streams of group %s: %s", self._group_id, exc)
            else:
                _log.exception("ending the event streams of group %s", self._group_id)
        finally:
            if not self.ready.done():
                self.ready.cancel()
            if listener is not None:
                listener.close()
            self._end()
            self._feeds.forget(self)

    async def _follow(
        self,
        listener: Listener,
        settings: Settings,
        group: Group,
        tally: GroupTally,
        jobs: dict[str, Job],
    ) -> None:
        """Apply each change once and write what it makes to every stream, until the
        group has finished (then the stored word on it) or the feed stops."""
        desk = self._feeds.desk
        seen = {job_id: job.updated_at for job_id, job in jobs.items()}
        change = b""
        status = tally.summary()[0]
        while not status.is_finished:
            item = await listener.next(settings.sse_keepalive_seconds)
            if item is None:
                self._write(KEEPALIVE)
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
            self._sequence += 1
            status, progress, counts = tally.summary()
            if status.is_finished:
                if change:
                    self._write(change)
            else:
                self._state = encode_group_state(group.id, self._sequence, status, progress, counts)
                # The job's event and the group's in one write.
                self._write(change + self._state)
            change = b""
        # The stored word on the finished group (a cancel_group, say, names it cancelled).
        self._state = _final(await desk.get_group(group.id, group.user_id), self._sequence)
        self._write(self._state)


class GroupFeeds:
    """The app's group feeds, one per followed group, made by the first stream of it."""

    def __init__(self, desk: JobDesk, broadcaster: Broadcaster, settings: Settings) -> None:
        self.desk = desk
        self.broadcaster = broadcaster
        self.settings = settings
        self._feeds: dict[tuple[str, str], GroupFeed] = {}

    async def feed(self, user_id: str, group_id: str) -> GroupFeed:
        """The feed of one of the user's groups, expecting one more stream; raises
        :class:`~jobdesk.errors.GroupNotFound` for a group that is not the user's."""
        feed = self._feeds.get((user_id, group_id))
        if feed is None:
            feed = self._feeds[user_id, group_id] = GroupFeed(self, user_id, group_id)
        feed.expect()
        try:
            # shield: a request that goes away must not stop the read the others await.
            await asyncio.shield(feed.ready)
        except BaseException:
            feed.release()
            raise
        return feed

    def forget(self, feed: GroupFeed) -> None:
        """``feed`` ended: the next stream of its group starts a new one."""
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]

    async def close(self) -> None:
        """Stop every feed (at shutdown)."""
        for feed in list(self._feeds.values()):
            feed.stop()
        self._feeds.clear()


class _GroupStreamResponse(EventStreamResponse):
    """A stream written by its group's feed."""

    def __init__(
        self, feed: GroupFeed, metrics: Metrics, settings: Settings, broadcaster: Broadcaster
    ) -> None:
        self._feed: GroupFeed | None = feed
        self._prepare(metrics, settings, broadcaster)

    async def _body(self, send: Send) -> None:
        feed, self._feed = self._feed, None
        assert feed is not None
        follower = Follower(send, feed.current)
        feed.join(follower)
        try:
            await follower.done
        finally:
            follower.cancel()
            feed.leave(follower)

    async def _release(self) -> None:
        if self._feed is not None:  # never joined
            self._feed.release()
            self._feed = None


async def open_group_stream(
    feeds: GroupFeeds,
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
    if last_event_id is not None:
        match = _EVENT_ID.fullmatch(last_event_id.strip())
        if match is None:
            raise InvalidInput("Last-Event-ID", "must be the id of a group event this API sent")
        resumed = match.group(3) if match.group(2) == group_id else None
        if resumed in _FINISHED:
            group = await feeds.desk.get_group(group_id, user_id)
            if group.status.is_finished and resumed == group.status.value:
                return Response(status_code=204)
    feed = await feeds.feed(user_id, group_id)
    return _GroupStreamResponse(feed, metrics, feeds.settings, feeds.broadcaster)


_FINISHED = frozenset(status.value for status in GroupStatus if status.is_finished)

"""The remote worker's wake-ups: a jobdesk server's ``/api/v1/worker/events`` stream.

:class:`~jobdesk.worker.HttpTransport` follows it for the worker runtime: each
``ready`` event (a job of the worker's types became pending) becomes a
:class:`~jobdesk.changes.JobChange`, and ``resync`` (or a broken stream, after
which the stream is opened again) becomes :data:`~jobdesk.changes.RESYNC`. Hints
only: the runtime keeps polling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

import httpx

from jobdesk import wire
from jobdesk.changes import RESYNC, JobChange
from jobdesk.models import JobStatus

__all__ = ["WorkFeed"]

_log = logging.getLogger("jobdesk.worker.http")
#: reconnection delays of the event stream, in seconds: from the first to the longest
_RECONNECT_FIRST, _RECONNECT_MAX = 0.5, 15.0


class WorkFeed:
    """Wake-ups from the server: each ``ready`` event as a JobChange, ``resync`` as RESYNC."""

    def __init__(self, client: httpx.AsyncClient, path: str) -> None:
        self._client = client
        self._path = path
        self._queue: asyncio.Queue[JobChange | object] = asyncio.Queue(1000)

    async def next_change(self, within: float | None = None) -> object:
        """The next wake-up, or None after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                return await self._queue.get()
        except TimeoutError:
            return None

    def _offer(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:  # nobody is reading: one RESYNC says it all
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(RESYNC)

    async def follow(self) -> None:
        """Read the stream; after it breaks, reconnect with a growing, jittered delay."""
        delay = _RECONNECT_FIRST
        while True:
            try:
                async with self._client.stream(
                    "GET", self._path, timeout=httpx.Timeout(10.0, read=None)
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        _log.warning("the event stream was refused (%d)", response.status_code)
                    else:
                        delay = _RECONNECT_FIRST
                        await self._read(response)
            except httpx.HTTPError as exc:
                _log.debug("the event stream broke: %s", exc)
            # Whatever was missed meanwhile: the runtime claims again on RESYNC.
            self._offer(RESYNC)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - not for security
            delay = min(_RECONNECT_MAX, delay * 2)

    async def _read(self, response: httpx.Response) -> None:
        event, data = "message", ""
        async for line in response.aiter_lines():
            if not line:  # the end of one event
                self._dispatch(event, data)
                event, data = "message", ""
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            # ": keepalive" comments and unknown fields are skipped

    def _dispatch(self, event: str, data: str) -> None:
        if event == "resync":
            self._offer(RESYNC)
        elif event == "ready":
            try:
                fields = json.loads(data)
                self._offer(
                    JobChange(
                        job_id=fields["id"],
                        user_id=fields.get("user_id", ""),  # the server no longer sends it
                        type=fields["type"],
                        status=JobStatus(fields["status"]),
                        progress=float(fields["progress"]),
                        progress_message=fields["progress_message"],
                        attempt=int(fields["attempt"]),
                        updated_at=wire.parse_time(fields["updated_at"], "updated_at"),
                    )
                )
            except (ValueError, KeyError, TypeError):
                _log.warning("skipping a malformed ready event: %.200s", data)
                self._offer(RESYNC)

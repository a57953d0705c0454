"""One task per process checks again the credentials of every open event stream.

A stream ends when the credential that opened it stops holding: checked again every
``sse_recheck_seconds``, and at its expiry. Each stream once held a task that slept
that long and checked; at ten thousand streams of a group that was two thousand
wake-ups a second, a third of the process's CPU. Here one task wakes every twentieth
of the period, checks the streams that are due, one check per credential for the
streams that share it, and ends the streams whose credential failed. An expiry ends
its stream by a timer at that moment, without a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from jobdesk.errors import JobdeskError, Unauthorized

if TYPE_CHECKING:
    from jobdesk.http.auth import Credential

__all__ = ["Guards", "Watch"]

#: how many streams a round checks before it lets other tasks run
_TURN = 256
#: the runner's tick, as a share of the re-check period, and its bounds in seconds
_TICKS_PER_PERIOD = 20
_TICK_BOUNDS = (0.005, 1.0)
_EXPIRED = ("expired", "the token expired: get a new one and reconnect")
_log = logging.getLogger("jobdesk.http.sse")

#: what ends a stream: called once, with the reason and a detail for the client
End = Callable[[str, str], None]


class Watch:
    """One stream's credential under watch; :meth:`close` when the stream ends."""

    __slots__ = ("_end", "closed", "credential", "every", "timer")

    def __init__(self, credential: Credential, every: float, end: End) -> None:
        self.credential = credential
        self.every = every
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self._end = end

    def end(self, reason: str, detail: str) -> None:
        """End the stream (once) with ``reason``."""
        if not self.closed:
            self.close()
            self._end(reason, detail)

    def close(self) -> None:
        """Stop watching (the stream ended)."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Guards:
    """The credentials of this process's open event streams, and the task that checks them."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._tick = _TICK_BOUNDS[1]
        self._task: asyncio.Task[None] | None = None

    def watch(self, credential: Credential, every: float, end: End) -> Watch:
        """Check ``credential`` every ``every`` seconds and at its expiry; ``end`` the
        stream (at most once) when it no longer holds."""
        watch = Watch(credential, every, end)
        loop = asyncio.get_running_loop()
        if credential.expires_at is not None:
            left = max(credential.expires_at - time.time(), 0.0)
            watch.timer = loop.call_later(left, watch.end, *_EXPIRED)
        self._tick = min(self._tick, max(every / _TICKS_PER_PERIOD, _TICK_BOUNDS[0]))
        self._schedule(watch, time.monotonic() + every)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="jobdesk-sse-guards")
        return watch

    @property
    def watched(self) -> int:
        """Streams under watch (a closed one may count until its next turn)."""
        return len(self._due)

    async def close(self) -> None:
        """Stop the task (at shutdown); the streams end by themselves."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, _, watch in self._due:
            watch.close()
        self._due.clear()

    def _schedule(self, watch: Watch, at: float) -> None:
        heapq.heappush(self._due, (at, next(self._order), watch))

    async def _run(self) -> None:
        while self._due:
            await asyncio.sleep(self._tick)
            await self._round()

    async def _round(self) -> None:
        """Check every stream that is due; one check per credential key in a round."""
        now = time.monotonic()
        verdicts: dict[Hashable, tuple[str, str] | None] = {}
        checked = 0
        while self._due and self._due[0][0] <= now:
            watch = heapq.heappop(self._due)[2]
            if watch.closed:
                continue
            key = watch.credential.key
            if key is None or key not in verdicts:
                verdict = await self._verdict(watch)
                if key is not None:
                    verdicts[key] = verdict
            else:
                verdict = verdicts[key]
            if watch.closed:  # it ended while its credential was checked
                continue
            if verdict is None:
                self._schedule(watch, now + watch.every)
            else:
                watch.end(*verdict)
            checked += 1
            if checked % _TURN == 0:
                await asyncio.sleep(0)

    @staticmethod
    async def _verdict(watch: Watch) -> tuple[str, str] | None:
        """Why the stream must end, or None while its credential holds (or cannot be
        told: the store is away, and a stream cannot tell a revoked token from a down
        database; dropping every stream at each blip would storm reconnects)."""
        credential = watch.credential
        if credential.expires_at is not None and time.time() >= credential.expires_at:
            return _EXPIRED
        try:
            async with asyncio.timeout(watch.every):
                await credential.check()
        except Unauthorized as exc:
            return "unauthorized", str(exc)
        except (JobdeskError, TimeoutError) as exc:
            _log.warning("could not check a stream's credential again: %r", exc)
        except Exception:
            # A check that breaks is not a check that passed: the stream ends (its client
            # reconnects, and is authenticated afresh), and the others are checked on.
            _log.exception("checking a stream's credential again failed; ending the stream")
            return "unauthorized", "the credential could not be checked again: reconnect"
        return None

"""Writing the same bytes to many event streams from one task.

A change that thousands of streams show is rendered once and written to each of them
by one task (the feed's), not by waking one task per stream: a wake-up costs more than
the write. :class:`Follower` is one stream as that task sees it: it writes at once when
the stream's connection takes it (the usual case: nothing suspends), and otherwise
keeps a short backlog while the write waits for the client. A follower that falls
further behind drops its backlog and, once it can write again, is sent the state as it
then stands (a state, not a delta, so it misses nothing a reconnection would not
also skip), so a stuck client never holds up the others, nor grows without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.types import Message, Send

__all__ = ["BACKLOG", "Follower", "begin"]

#: chunks a follower keeps while a write to its client waits; past that it is behind
BACKLOG = 64


def begin(send: Send, message: Message) -> Coroutine[Any, Any, None] | None:
    """Run ``send(message)`` in the caller's task as far as it goes without waiting.

    None when it completed (an ASGI server writes to the socket at once unless the
    client is not reading); else a coroutine that finishes the send, to be run as a
    task. Python 3.12's eager tasks do the same; this runs on 3.11 and under uvloop.
    """
    coroutine = send(message)
    if not isinstance(coroutine, Coroutine):  # an awaitable of another kind
        return _awaited(coroutine)
    try:
        awaited = coroutine.send(None)
    except StopIteration:
        return None
    return _rest(coroutine, awaited)


async def _rest(coroutine: Coroutine[Any, Any, None], awaited: Any) -> None:
    """Finish a send that :func:`begin` started and that waits on ``awaited``."""
    try:
        while True:
            # ``awaited`` is what the send yielded to its task: a future (awaited here, this
            # task waits for it as the send's own would have), or None for a turn of the loop.
            if awaited is None:
                await asyncio.sleep(0)
            else:
                # What a task does with a future its coroutine yields: take it as waited
                # on (else awaiting it again is refused), and wait for it. What it raises
                # is raised inside the coroutine too, when that resumes.
                awaited._asyncio_future_blocking = False
                with contextlib.suppress(Exception):
                    await awaited
            awaited = coroutine.send(None)
    except StopIteration:
        return
    except asyncio.CancelledError:
        coroutine.close()
        raise


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


class Follower:
    """One stream a feed writes to: its ASGI ``send``, its backlog, and when it is done."""

    def __init__(self, send: Send, current: Callable[[], bytes]) -> None:
        """``current`` gives the state to send to a follower that fell behind."""
        self._send = send
        self._current = current
        self._backlog: list[bytes] = []
        self._writing: asyncio.Task[None] | None = None
        self._behind = False
        self._ending = False
        #: set once everything written has been sent and the feed let go of it (or the
        #: client went away)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def write(self, chunk: bytes) -> None:
        """Send ``chunk`` now, or after the write under way."""
        if self.done.done() or self._ending:
            return
        if self._writing is None:
            self._start(chunk)
        elif len(self._backlog) < BACKLOG:
            self._backlog.append(chunk)
        else:
            self._backlog.clear()
            self._behind = True

    def end(self) -> None:
        """No more chunks: done once those written are sent."""
        self._ending = True
        if self._writing is None:
            self._finish()

    def cancel(self) -> None:
        """Stop at once (the stream is closing): a write under way is abandoned."""
        if self._writing is not None:
            self._writing.cancel()
        self._finish()

    def _start(self, chunk: bytes) -> None:
        try:
            rest = begin(
                self._send, {"type": "http.response.body", "body": chunk, "more_body": True}
            )
        except Exception:  # the client went away mid-write (what ASGI 2.4 servers raise)
            self._finish()
            return
        if rest is not None:
            self._writing = asyncio.ensure_future(rest)
            self._writing.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        if task.cancelled() or task.exception() is not None:
            self._finish()
            return
        if self._behind:
            self._behind = False
            self._backlog = [self._current()]
        while self._backlog and self._writing is None and not self.done.done():
            self._start(self._backlog.pop(0))
        if self._ending and self._writing is None:
            self._finish()

    def _finish(self) -> None:
        self._backlog.clear()
        if not self.done.done():
            self.done.set_result(None)

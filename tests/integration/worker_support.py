"""Helpers for the worker runtime tests: a runtime on a test desk, and waiting for a state."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from jobdesk import Completion, Job, JobDesk
from jobdesk.errors import JobdeskError
from jobdesk.models import ProgressReply
from jobdesk.worker import DeskTransport, Registry, WorkerRuntime

#: how long a test waits for a state before it fails (a bound, not a sleep)
DEADLINE_SECONDS = 15.0

_names = itertools.count(1)


async def runtime(desk: JobDesk, registry: Registry, **options: Any) -> WorkerRuntime:
    """A runtime with a worker token of its own (``worker-N``) on ``desk``."""
    token = await desk.create_worker_token(f"worker-{next(_names)}")
    return WorkerRuntime(registry, await DeskTransport.connect(desk, token), **options)


class CountingTransport(DeskTransport):
    """A :class:`DeskTransport` that counts its claims (alone, or with completions).

    ``round_trip`` seconds are added to each commit of completions, as a database
    across a network would: jobs keep finishing while a commit travels.
    """

    def __init__(self, transport: DeskTransport, *, round_trip: float = 0.0) -> None:
        super().__init__(transport.desk, transport.worker)
        self.round_trip = round_trip
        self.claims = 0
        #: the ``limit`` of each claim, in order
        self.limits: list[int] = []

    async def claim(self, types: frozenset[str], limit: int) -> list[Job]:
        self.claims += 1
        self.limits.append(limit)
        return await super().claim(types, limit)

    async def complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        self.claims += 1
        self.limits.append(limit)
        await asyncio.sleep(self.round_trip)
        return await super().complete_and_claim(completions, types, limit)


class HeartbeatWatch(DeskTransport):
    """A :class:`DeskTransport` that sets ``past`` at the first heartbeat sent ``seconds``
    or more after ``start()``: a handler waits on it instead of sleeping."""

    def __init__(self, transport: DeskTransport, *, seconds: float) -> None:
        super().__init__(transport.desk, transport.worker)
        self.seconds = seconds
        self.heartbeats = 0
        self.past = asyncio.Event()
        self._started: float | None = None

    def start(self) -> None:
        """Count from now."""
        self._started = asyncio.get_running_loop().time()

    async def report(
        self, job_id: str, attempt: int, progress: float | None, message: str | None
    ) -> ProgressReply:
        reply = await super().report(job_id, attempt, progress, message)
        if progress is None:
            self.heartbeats += 1
            elapsed = asyncio.get_running_loop().time() - (self._started or 0.0)
            if self._started is not None and elapsed >= self.seconds:
                self.past.set()
        return reply


async def wait_until(condition: Callable[[], object], within: float = DEADLINE_SECONDS) -> None:
    """Return once ``condition()`` is true; fail the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        # Polls state that nothing signals (a worker's counters, another process's writes).
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

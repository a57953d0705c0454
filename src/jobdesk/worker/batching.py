"""Group commit for completions: jobs that finish together are completed in one transaction.

Each finished job hands its :class:`~jobdesk.Completion` to the batcher and
waits. The batcher commits whatever has queued up in one ``complete_jobs``
call; completions that arrive while ``in_flight`` commits are on their way go
together in the next one. An idle worker therefore adds no delay, and a busy
one pays one commit for many jobs. A job's outcome is given back only after
its own commit answered.

With two commits in flight (a remote worker's default), the next batch is sent
while the last one's request is still on the wire: the worker, the server and
the database then work at the same time instead of each waiting for the others.
The batches hold different jobs, so their order does not matter.

With a :class:`Refill` (the worker runtime gives one), each commit also claims
the jobs for the slots that are free by then (``complete_and_claim``): a busy
worker's whole cycle, hand in what finished and take what is next, is one round
trip and one commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.models import Completion, Job
from jobdesk.worker.transport import BriefCompletions, Transport

__all__ = ["CompletionBatcher", "Refill"]

_log = logging.getLogger("jobdesk.worker")

#: the most completions one commit carries: a short commit gives each job's outcome back
#: soon (``complete_jobs`` itself accepts up to ``validation.MAX_BATCH``, 1000)
MAX_COMPLETIONS_PER_COMMIT = 100

#: a completion's outcome: the completed job (None if the transport did not send it
#: back: see :class:`~jobdesk.worker.transport.BriefCompletions`), or the error
Outcome = Job | JobdeskError | None
_Entry = tuple[Completion, "asyncio.Future[Outcome]"]


class Refill(Protocol):
    """Who takes the jobs claimed with a commit (the worker runtime's free slots)."""

    #: the job types to claim
    types: frozenset[str]

    def reserve(self) -> int:
        """Take the free slots for a claim; how many (0: claim nothing)."""
        ...

    def fill(self, jobs: list[Job], reserved: int, asked_at: float, *, answered: bool) -> None:
        """Start ``jobs`` (at most ``reserved``), claimed by a request sent at loop time
        ``asked_at``, and give back the slots left over; ``answered`` is False when the
        request failed (then ``jobs`` is empty and nothing is known of the queue)."""
        ...


class CompletionBatcher:
    """Collects completions and commits them in batches, at most ``in_flight`` at once;
    run :meth:`run` in a task."""

    def __init__(
        self,
        transport: Transport,
        *,
        max_batch: int = MAX_COMPLETIONS_PER_COMMIT,
        refill: Refill | None = None,
        in_flight: int = 1,
    ) -> None:
        if in_flight < 1:
            raise InvalidInput("in_flight", "must be at least 1")
        self._transport = transport
        #: the transport's completions without the jobs, when it has them
        self._brief = transport if isinstance(transport, BriefCompletions) else None
        self._max_batch = max_batch
        self._refill = refill
        self._in_flight = in_flight
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue()
        self._committing = 0
        #: set when a completion queues up or a commit ends
        self._changed = asyncio.Event()
        #: how many completions the latest batch sent carried
        self._sent = 0
        #: the size of every batch committed so far, in order of their answers (for logs
        #: and tests)
        self.batch_sizes: list[int] = []

    @property
    def busy(self) -> bool:
        """Completions are waiting or being committed: the next commit will refill."""
        return self._committing > 0 or not self._queue.empty()

    async def complete(self, completion: Completion) -> Outcome:
        """Queue ``completion``; the completed job, or the error that refused it, once committed.

        Raises what the transport raised for the whole batch
        (:class:`~jobdesk.errors.StoreUnavailable`, say): then nothing is known
        to be committed.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((completion, future))
        self._changed.set()
        return await future

    async def run(self) -> None:
        """Commit batches until cancelled (commits on their way are cancelled too)."""
        room = asyncio.Semaphore(self._in_flight)
        async with asyncio.TaskGroup() as commits:
            while True:
                # Wait for room first: what finishes meanwhile queues up for one batch.
                await room.acquire()
                try:
                    batch = [await self._queue.get()]
                except BaseException:
                    room.release()
                    raise
                self._committing += 1
                # Let every job that finished in this turn of the loop queue up first.
                await asyncio.sleep(0)
                await self._worth_a_request()
                while len(batch) < self._max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                self._sent = len(batch)
                commits.create_task(self._commit_in_turn(batch, room))

    async def _worth_a_request(self) -> None:
        """While another commit is on its way, wait until this one would carry as many
        completions (or the other is answered). A request costs the server, its database
        and the worker about as much for one job as for fifty: a second request sent
        with a few would cost more per job than it saves in waiting (``bench/RESULTS.md``).
        """
        while self._committing > 1 and self._queue.qsize() + 1 < self._sent:
            self._changed.clear()
            await self._changed.wait()

    async def _commit_in_turn(self, batch: list[_Entry], room: asyncio.Semaphore) -> None:
        try:
            await self._commit(batch)
        finally:
            self._committing -= 1
            self._changed.set()
            room.release()

    async def _commit(self, batch: list[_Entry]) -> None:
        completions = [completion for completion, _ in batch]
        asked_at = asyncio.get_running_loop().time()  # the lease starts before the answer
        reserved = 0 if self._refill is None else self._refill.reserve()
        claimed: list[Job] | None = None  # None: no claim was answered
        try:
            if reserved:
                assert self._refill is not None
                outcomes, claimed = await self._complete_and_claim(
                    completions, self._refill.types, reserved
                )
            else:
                outcomes = await self._complete(completions)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            if self._refill is not None:
                answered = claimed is not None
                self._refill.fill(claimed or [], reserved, asked_at, answered=answered)
        self.batch_sizes.append(len(batch))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def _complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Outcome], list[Job] | None]:
        """The outcomes and the jobs claimed (None: the claim was not made)."""
        try:
            if self._brief is not None:
                brief, claimed = await self._brief.complete_and_claim_briefly(
                    completions, types, limit
                )
                return list[Outcome](brief), claimed
            full, claimed = await self._transport.complete_and_claim(completions, types, limit)
            return list[Outcome](full), claimed
        except InvalidInput:
            # Refused before anything was written: one bad result; sort it out alone.
            return await self._complete(completions), None

    async def _complete(self, completions: Sequence[Completion]) -> list[Outcome]:
        try:
            if self._brief is not None:
                return list[Outcome](await self._brief.complete_briefly(completions))
            return list[Outcome](await self._transport.complete(completions))
        except InvalidInput as refused:
            # One bad result (not JSON, too large) refuses the whole call before anything
            # is written: commit the others alone so that only the bad one is refused.
            if len(completions) == 1:
                return [refused]
            _log.info(
                "a batch of %d was refused (%s); completing one by one", len(completions), refused
            )
            outcomes: list[Outcome] = []
            for completion in completions:
                outcomes.extend(await self._complete([completion]))
            return outcomes

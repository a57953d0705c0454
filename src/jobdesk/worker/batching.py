"""Group commit for completions: jobs that finish together are completed in one transaction.

Each finished job hands its :class:`~jobdesk.Completion` to the batcher and
waits. The batcher commits whatever has queued up in one ``complete_jobs``
call; completions that arrive while a commit is in flight go together in the
next one. An idle worker therefore adds no delay, and a busy one pays one
commit for many jobs. A job's outcome is given back only after its commit.

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
from jobdesk.worker.transport import Transport

__all__ = ["CompletionBatcher", "Refill"]

_log = logging.getLogger("jobdesk.worker")

#: the most completions one commit carries: a short commit gives each job's outcome back
#: soon (``complete_jobs`` itself accepts up to ``validation.MAX_BATCH``, 1000)
MAX_COMPLETIONS_PER_COMMIT = 100

Outcome = Job | JobdeskError
_Entry = tuple[Completion, "asyncio.Future[Outcome]"]


class Refill(Protocol):
    """Who takes the jobs claimed with a commit (the worker runtime's free slots)."""

    #: the job types to claim
    types: frozenset[str]

    def reserve(self) -> int:
        """Take the free slots for a claim; how many (0: claim nothing)."""
        ...

    def fill(self, jobs: list[Job], reserved: int) -> None:
        """Start ``jobs`` (at most ``reserved``) and give back the slots left over."""
        ...


class CompletionBatcher:
    """Collects completions and commits them in batches; run :meth:`run` in a task."""

    def __init__(
        self,
        transport: Transport,
        *,
        max_batch: int = MAX_COMPLETIONS_PER_COMMIT,
        refill: Refill | None = None,
    ) -> None:
        self._transport = transport
        self._max_batch = max_batch
        self._refill = refill
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue()
        self._committing = False
        #: the size of every batch committed so far, in order (for logs and tests)
        self.batch_sizes: list[int] = []

    @property
    def busy(self) -> bool:
        """Completions are waiting or being committed: the next commit will refill."""
        return self._committing or not self._queue.empty()

    async def complete(self, completion: Completion) -> Outcome:
        """Queue ``completion``; the completed job, or the error that refused it, once committed.

        Raises what the transport raised for the whole batch
        (:class:`~jobdesk.errors.StoreUnavailable`, say): then nothing is known
        to be committed.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((completion, future))
        return await future

    async def run(self) -> None:
        """Commit batches until cancelled."""
        while True:
            batch = [await self._queue.get()]
            self._committing = True
            try:
                # Let every job that finished in this turn of the loop queue up first.
                await asyncio.sleep(0)
                while len(batch) < self._max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._commit(batch)
            finally:
                self._committing = False

    async def _commit(self, batch: list[_Entry]) -> None:
        completions = [completion for completion, _ in batch]
        reserved = 0 if self._refill is None else self._refill.reserve()
        claimed: list[Job] = []
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
                self._refill.fill(claimed, reserved)
        self.batch_sizes.append(len(batch))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def _complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Outcome], list[Job]]:
        try:
            return await self._transport.complete_and_claim(completions, types, limit)
        except InvalidInput:
            # Refused before anything was written: one bad result; sort it out alone.
            return await self._complete(completions), []

    async def _complete(self, completions: Sequence[Completion]) -> list[Outcome]:
        try:
            return await self._transport.complete(completions)
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

"""The worker runtime's one seam: how it reaches jobdesk.

The runtime calls a :class:`Transport` and nothing else: claim, report
(progress or heartbeat), complete a batch, fail, release, snooze, reap, and a feed of
changes to wake on. :class:`DeskTransport` goes straight to the database through
a :class:`~jobdesk.JobDesk`; a transport over the HTTP API (a remote server and
a worker token) implements the same methods, so handlers never know which one
runs them.

Every method raises the errors of the :class:`~jobdesk.JobDesk` operation it
stands for (:class:`~jobdesk.errors.LeaseLost`,
:class:`~jobdesk.errors.StoreUnavailable`...), whatever carries it.

A transport may say how many completion batches the runtime may have on their way
at once with a ``commits_in_flight`` attribute (1 when it has none): the HTTP
transport says 2, so that the next batch travels while the last one's request
is answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from jobdesk.desk import JobDesk
from jobdesk.errors import JobdeskError
from jobdesk.models import Completion, Job, JSONValue, ProgressReply
from jobdesk.models import Worker as WorkerIdentity

__all__ = ["BriefCompletions", "ChangeFeed", "DeskTransport", "Transport"]


class ChangeFeed(Protocol):
    """Job changes to wake on: a :class:`~jobdesk.changes.Subscription` is one."""

    async def next_change(self, within: float | None = None) -> object:
        """The next change (a ``JobChange`` or ``RESYNC``), or None after ``within`` seconds."""
        ...


class Transport(Protocol):
    """What the worker runtime needs from jobdesk, for one authenticated worker."""

    @property
    def worker_name(self) -> str:
        """The name of the worker token this transport acts for."""
        ...

    @property
    def token_types(self) -> frozenset[str] | None:
        """The job types the worker token allows (None: any)."""
        ...

    async def verify(self) -> None:
        """Check that the worker token still holds: :class:`~jobdesk.errors.Unauthorized`
        once it was revoked or expired."""
        ...

    async def claim(self, types: frozenset[str], limit: int) -> list[Job]:
        """Start up to ``limit`` due jobs of ``types`` for this worker (``claim_jobs``)."""
        ...

    async def report(
        self, job_id: str, attempt: int, progress: float | None, message: str | None
    ) -> ProgressReply:
        """Progress (or, with ``progress=None``, a heartbeat); renews the lease."""
        ...

    async def complete(self, completions: Sequence[Completion]) -> list[Job | JobdeskError]:
        """Complete a batch in one transaction; each entry's outcome, in order."""
        ...

    async def complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        """Complete a batch (maybe empty) and claim up to ``limit`` jobs in one transaction:
        each completion's outcome, in order, and the claimed jobs."""
        ...

    async def fail(
        self,
        job_id: str,
        attempt: int,
        error: dict[str, JSONValue],
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> Job:
        """Report a failed attempt (``fail_job``)."""
        ...

    async def release(self, job_id: str, attempt: int) -> Job:
        """Hand an unfinished job back without spending its attempt (``release_job``)."""
        ...

    async def snooze(self, job_id: str, attempt: int, delay: float) -> Job:
        """Not now: pending again after ``delay`` seconds, its attempt unspent
        (``snooze_job``)."""
        ...

    async def reap(self) -> int:
        """Requeue jobs whose lease ran out, any worker's (``requeue_expired``); how many."""
        ...

    async def run_schedules(self) -> int | None:
        """Fire due schedules (``run_due_schedules``); how many jobs they made. None: this
        transport cannot (a remote worker: the server fires them)."""
        ...

    def changes(self) -> AbstractAsyncContextManager[ChangeFeed]:
        """A feed of job changes for the ``async with`` block, to wake on new work."""
        ...


@runtime_checkable
class BriefCompletions(Protocol):
    """What a transport may offer besides :class:`Transport`: completions answered
    without the completed jobs (None for each that completed), when sending them back
    costs (the HTTP transport: rendering, the wire, parsing). The worker runtime uses
    it when the transport has it; it needs only which completions held."""

    async def complete_briefly(
        self, completions: Sequence[Completion]
    ) -> list[JobdeskError | None]:
        """As :meth:`Transport.complete`; None for each job that completed."""
        ...

    async def complete_and_claim_briefly(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[JobdeskError | None], list[Job]]:
        """As :meth:`Transport.complete_and_claim`; None for each job that completed."""
        ...


class DeskTransport:
    """The :class:`Transport` over a :class:`~jobdesk.JobDesk`: the database directly.

    Open it with :meth:`connect`, which checks the worker token::

        async with JobDesk.open(url) as desk:
            transport = await DeskTransport.connect(desk, token)
            await WorkerRuntime(registry, transport).run()
    """

    #: one completion batch at a time: on the database, the worker and PostgreSQL already
    #: keep both cores of a small machine busy, and a second commit in flight only adds
    #: smaller batches (``bench/RESULTS.md``)
    commits_in_flight = 1

    def __init__(self, desk: JobDesk, worker: WorkerIdentity, token: str | None = None) -> None:
        self.desk = desk
        #: the verified worker this transport acts for
        self.worker = worker
        self._token = token

    @classmethod
    async def connect(cls, desk: JobDesk, token: str) -> DeskTransport:
        """Verify ``token`` (:class:`~jobdesk.errors.Unauthorized` if it is not a live
        worker token) and act as its worker."""
        return cls(desk, await desk.verify_worker_token(token), token)

    @property
    def worker_name(self) -> str:
        """The worker token's name: the ``worker_id`` of the jobs it holds."""
        return self.worker.name

    @property
    def token_types(self) -> frozenset[str] | None:
        """The job types the worker token allows (None: any)."""
        return self.worker.types

    async def verify(self) -> None:
        """Verify the token again (made by :meth:`connect`; a transport made from a
        ``Worker`` alone has no token to check, and its worker holds as long as it runs)."""
        if self._token is not None:
            await self.desk.verify_worker_token(self._token)

    async def claim(self, types: frozenset[str], limit: int) -> list[Job]:
        """``claim_jobs`` for this worker."""
        return await self.desk.claim_jobs(self.worker, types=sorted(types), limit=limit)

    async def report(
        self, job_id: str, attempt: int, progress: float | None, message: str | None
    ) -> ProgressReply:
        """``update_job_progress``, or ``heartbeat_job`` when ``progress`` is None."""
        if progress is None:
            return await self.desk.heartbeat_job(self.worker, job_id, attempt=attempt)
        return await self.desk.update_job_progress(
            self.worker, job_id, progress, message, attempt=attempt
        )

    async def complete(self, completions: Sequence[Completion]) -> list[Job | JobdeskError]:
        """``complete_jobs``: one transaction for the batch."""
        return await self.desk.complete_jobs(self.worker, completions)

    async def complete_and_claim(
        self, completions: Sequence[Completion], types: frozenset[str], limit: int
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        """``complete_and_claim_jobs``: the worker's cycle in one transaction."""
        return await self.desk.complete_and_claim_jobs(
            self.worker, completions, types=sorted(types), limit=limit
        )

    async def fail(
        self,
        job_id: str,
        attempt: int,
        error: dict[str, JSONValue],
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> Job:
        """``fail_job``; ``retry_after`` replaces the desk's backoff."""
        return await self.desk.fail_job(
            self.worker,
            job_id,
            error,
            retryable=retryable,
            attempt=attempt,
            retry_after=retry_after,
        )

    async def release(self, job_id: str, attempt: int) -> Job:
        """``release_job``."""
        return await self.desk.release_job(self.worker, job_id, attempt=attempt)

    async def snooze(self, job_id: str, attempt: int, delay: float) -> Job:
        """``snooze_job``."""
        return await self.desk.snooze_job(self.worker, job_id, delay, attempt=attempt)

    async def reap(self) -> int:
        """``requeue_expired``, then ``finish_groups`` (groups' fan-in jobs): safe to run
        from many processes at once."""
        requeued = await self.desk.requeue_expired()
        await self.desk.finish_groups()
        return requeued

    async def run_schedules(self) -> int | None:
        """``run_due_schedules``: safe to run from many processes at once."""
        return await self.desk.run_due_schedules()

    def changes(self) -> AbstractAsyncContextManager[ChangeFeed]:
        """``desk.subscribe(ready_only=True)``: every process's new work on PostgreSQL,
        this one's changes on SQLite (and a re-read signal after other processes' commits)."""
        return self.desk.subscribe(ready_only=True)

"""What a handler holds while it runs: the job, progress reports, cancellation.

A :class:`JobContext` is one attempt of one job. It reports progress under the
attempt's fence, and it is where the runtime records why the handler must stop
(the user cancelled, the lease was lost, the time ran out, the worker is
shutting down): from then on it writes nothing for the job. ``def`` handlers get
a :class:`SyncJobContext`, the same thing with a blocking ``progress``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, NoReturn

from jobdesk.errors import JobNotFound, LeaseLost, StoreUnavailable
from jobdesk.models import Job, JSONValue, ProgressReply
from jobdesk.worker.transport import Transport

__all__ = [
    "Fail",
    "JobContext",
    "Retry",
    "Snooze",
    "StopReason",
    "SyncJobContext",
    "lease_seconds",
]

_log = logging.getLogger("jobdesk.worker")

StopReason = Literal["cancelled", "lease lost", "timed out", "shutting down"]
"""Why the runtime told a handler to stop."""

#: a lease with no known length (never, from the stores) gets heartbeats this often
_DEFAULT_LEASE_SECONDS = 60.0


def lease_seconds(job: Job) -> float:
    """The length of the lease ``job`` was claimed under, as the store granted it."""
    if job.lease_expires_at is None or job.started_at is None:
        return _DEFAULT_LEASE_SECONDS
    return max(0.001, (job.lease_expires_at - job.started_at).total_seconds())


class Retry(Exception):
    """Raise from a handler to fail this attempt and ask for another one.

    ``after`` is the delay in seconds before the next attempt (at most
    ``Limits.retry_backoff_max_seconds``); without it the job's backoff applies.
    When the job has no attempts left, the failure is final.
    """

    def __init__(
        self,
        message: str = "the handler asked for a retry",
        *,
        after: float | None = None,
        code: str | None = None,
        details: JSONValue = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.after = after
        self.code = code
        self.details = details


class Fail(Exception):
    """Raise from a handler to fail the job for good: no further attempt will run."""

    def __init__(self, message: str, *, code: str | None = None, details: JSONValue = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details


class Snooze(Exception):
    """Raise from a handler (or call ``ctx.snooze(seconds)``) when the job cannot run
    now (an outside resource is busy, a quota is spent): it goes back to ``pending``
    for ``delay`` seconds without spending its attempt, and no error is recorded.

    Unlike :class:`Retry`, it is not a failure: a job may snooze any number of times.
    ``delay`` is 0 to 30 days.
    """

    def __init__(self, delay: float) -> None:
        super().__init__(f"snoozed for {delay:g} s")
        self.delay = delay


class JobContext:
    """One attempt of one job, as its ``async def`` handler sees it.

    ``ctx.job`` is the job as claimed (``ctx.job.input``, ``ctx.job.attempt``...);
    ``await ctx.progress(pct, message)`` reports progress and renews the lease;
    ``ctx.cancelled`` turns True when the handler should stop; ``ctx.snooze(seconds)``
    ends the handler and puts the job back for later, its attempt unspent.
    """

    def __init__(
        self,
        job: Job,
        transport: Transport,
        *,
        cancel_grace: float,
        claimed_at: float | None = None,
    ) -> None:
        #: the job as it was claimed for this attempt
        self.job = job
        self._transport = transport
        self._cancel_grace = cancel_grace
        self._stop_reason: StopReason | None = None
        self._task: asyncio.Future[Any] | None = None
        self._loop = asyncio.get_running_loop()
        #: loop time of the last accepted write for this attempt (claim, progress, heartbeat);
        #: ``claimed_at`` for a job that waited in the worker before it started
        self.last_write = self._loop.time() if claimed_at is None else claimed_at

    @property
    def cancelled(self) -> bool:
        """True once the handler should stop: whatever it returns after that is discarded.

        The user cancelled the job (the handler's task is cancelled after a grace
        period), the lease was lost to another attempt, the handler ran out of
        time, or the worker is shutting down and its grace period is over.
        """
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the handler was told to stop, or None while it may go on."""
        return self._stop_reason

    @property
    def lease_seconds(self) -> float:
        """The length of this attempt's lease, as the store granted it."""
        return lease_seconds(self.job)

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100) with an optional message; renews the lease.

        After the handler was told to stop, nothing is written. A database that
        is briefly unreachable is logged, not raised: the heartbeat keeps the lease.
        A bad ``percent`` or ``message`` raises :class:`~jobdesk.errors.InvalidInput`.
        """
        await self._report(percent, message)

    async def heartbeat(self) -> None:
        """Renew the lease without new progress (the runtime does this by itself)."""
        await self._report(None, None)

    def snooze(self, seconds: float) -> NoReturn:
        """End the handler: the job cannot run now; ``pending`` again after ``seconds``.

        It raises :class:`Snooze`, which the runtime turns into ``snooze_job``: the
        attempt is not spent and no error is recorded (a busy resource is not a
        failure). Whatever the handler does after the call does not run.
        """
        raise Snooze(seconds)

    async def _report(self, percent: float | None, message: str | None) -> None:
        if self._stop_reason is not None:
            return
        try:
            reply: ProgressReply = await self._transport.report(
                self.job.id, self.job.attempt, percent, message
            )
        except (LeaseLost, JobNotFound) as lost:
            _log.warning("job %s attempt %d: %s", self.job.id, self.job.attempt, lost)
            self.stop("lease lost")
            return
        except StoreUnavailable as exc:
            _log.warning("job %s: could not report progress: %s", self.job.id, exc)
            return
        self.last_write = self._loop.time()
        if reply.cancel_requested:
            _log.info("job %s was cancelled by its user; stopping its handler", self.job.id)
            self.stop("cancelled", grace=self._cancel_grace)

    # -- for the runtime ------------------------------------------------------------------

    def attach(self, task: asyncio.Future[Any]) -> None:
        """Bind the task (or future) running the handler, which :meth:`stop` cancels."""
        self._task = task

    def stop(self, reason: StopReason, *, grace: float = 0.0) -> None:
        """Tell the handler to stop: ``cancelled`` is True now, its task is cancelled after
        ``grace`` seconds. The first reason given is the one that counts.
        """
        if self._stop_reason is not None:
            return
        self._stop_reason = reason
        task = self._task
        if task is None or task.done():
            return
        if grace > 0:
            self._loop.call_later(grace, task.cancel)
        else:
            task.cancel()


class SyncJobContext:
    """The :class:`JobContext` of a ``def`` handler, which runs in a thread of its own.

    ``ctx.progress(pct, message)`` blocks until the report is written;
    ``ctx.cancelled`` should be checked between steps, since a thread cannot be
    interrupted: after the grace period the runtime stops waiting for it.
    """

    def __init__(self, context: JobContext, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self._loop = loop

    @property
    def job(self) -> Job:
        """The job as it was claimed for this attempt."""
        return self._context.job

    @property
    def cancelled(self) -> bool:
        """True once the handler should stop; see :attr:`JobContext.cancelled`."""
        return self._context.cancelled

    def snooze(self, seconds: float) -> NoReturn:
        """End the handler: ``pending`` again after ``seconds``; see :meth:`JobContext.snooze`."""
        raise Snooze(seconds)

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100) and renew the lease; blocks until written."""
        report = self._context.progress(percent, message)
        try:
            future = asyncio.run_coroutine_threadsafe(report, self._loop)
        except RuntimeError:  # the worker's loop is gone: the process is exiting
            report.close()
            raise
        future.result()

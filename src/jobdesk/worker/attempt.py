"""One attempt of one job: its handler, its heartbeat, and the write that ends it.

The handler runs in a task of its own (``def`` handlers in a thread), beside a
heartbeat that renews the lease at a third of its length while no progress
report has. How the attempt ended decides the one final write:

- the handler returned: the job is completed (through the completion batcher);
- it raised :class:`~jobdesk.worker.Fail`: the job fails for good;
- it raised anything else, :class:`~jobdesk.worker.Retry` included, or ran past its
  timeout: the attempt fails and the job is retried while attempts remain;
- the worker is shutting down: the job is handed back, its attempt unspent;
- the user cancelled it, or the lease went to another attempt: nothing is
  written, and whatever the handler produced is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jobdesk import tracing
from jobdesk.errors import InvalidInput, JobdeskError, LeaseLost, StoreUnavailable
from jobdesk.models import Completion, Job, JobStatus, JSONValue
from jobdesk.worker.batching import CompletionBatcher
from jobdesk.worker.context import Fail, JobContext, Retry, Snooze, SyncJobContext
from jobdesk.worker.registry import Handler
from jobdesk.worker.transport import Transport

__all__ = ["AttemptRunner", "error_of"]

T = TypeVar("T")
_log = logging.getLogger("jobdesk.worker")

#: delays between tries of a final write (completion, failure, hand-back) the store refused
WRITE_RETRY_DELAYS = (0.5, 1.0, 2.0)
#: how long an ``async def`` handler may take to end once its task was cancelled (at most
#: a third of its lease, which nothing renews meanwhile); one that catches the
#: cancellation and goes on is abandoned then, like a ``def`` handler
ABANDON_AFTER = 2.0


@dataclass(frozen=True, slots=True)
class _Complete:
    result: JSONValue


@dataclass(frozen=True, slots=True)
class _Fail:
    error: dict[str, JSONValue]
    retryable: bool
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class _Release:
    pass


@dataclass(frozen=True, slots=True)
class _Snooze:
    delay: float


@dataclass(frozen=True, slots=True)
class _Drop:
    reason: str


_Outcome = _Complete | _Fail | _Release | _Snooze | _Drop


def error_of(exc: BaseException) -> dict[str, JSONValue]:
    """The stored error for an exception a handler raised: its message and class name.

    No traceback: a job's error is shown to its user. The worker logs the traceback.
    """
    message = str(exc) or type(exc).__name__
    # The stores refuse NUL characters; messages are cut at 1000 characters.
    return {"message": message.replace("\x00", "\\0")[:1000], "code": type(exc).__name__}


def _handler_error(exc: Retry | Fail) -> dict[str, JSONValue]:
    error: dict[str, JSONValue] = {
        "message": (exc.message or type(exc).__name__).replace("\x00", "\\0")[:1000]
    }
    if exc.code is not None:
        error["code"] = exc.code
    if exc.details is not None:
        error["details"] = exc.details
    return error


def _set_result(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # a cancelled future has stopped waiting
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def in_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run ``function(*args)`` in a daemon thread of its own; a future of its result.

    Not ``asyncio.to_thread``: a handler that ignores cancellation must not keep the
    process from exiting once its job has been handed back.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def target() -> None:
        settle: Callable[[], None]
        try:
            result = context.run(function, *args)
        except BaseException as exc:
            settle = functools.partial(_set_exception, future, exc)
        else:
            settle = functools.partial(_set_result, future, result)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=target, name="jobdesk-handler", daemon=True).start()
    return future


class AttemptRunner:
    """Runs attempts to their end and writes how each ended; counts the outcomes."""

    def __init__(
        self, transport: Transport, batcher: CompletionBatcher, outcomes: Counter[str]
    ) -> None:
        self.transport = transport
        self._batcher = batcher
        self._outcomes = outcomes
        #: handler tasks that went on after they were cancelled and were left running
        self.abandoned: set[asyncio.Task[JSONValue]] = set()

    async def run(
        self,
        context: JobContext,
        handler: Handler,
        handler_done: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run ``handler`` on ``context.job`` and write the attempt's outcome.

        ``handler_done`` is awaited between the two: the handler has stopped, its
        outcome is not written yet.
        """
        job = context.job
        with tracing.process(job.type, job.id, job.attempt, job.traceparent):
            outcome = await self._supervise(context, handler)
            if handler_done is not None:
                await handler_done()
            await self._report(context, outcome)

    async def _supervise(self, context: JobContext, handler: Handler) -> _Outcome:
        """Run the handler beside its heartbeat; how the attempt ended.

        The handler runs in a task of its own (a ``def`` handler: a future of its thread).
        A stop (the context's: cancelled, lease lost, shutting down; or the handler's
        timeout) cancels it and waits for it a while (:meth:`_stop_handler`), so that one
        that ignores its cancellation is abandoned, not waited for forever.
        """
        loop = asyncio.get_running_loop()
        job = context.job
        running: asyncio.Future[JSONValue]
        if handler.is_async:
            running = loop.create_task(
                handler.function(context, job.input), name=f"jobdesk-handler-{job.id}"
            )
        else:
            # A thread cannot be cancelled: cancelling the future only stops waiting for it.
            running = in_thread(handler.function, SyncJobContext(context, loop), job.input)
        # What context.stop cancels: a stand-in, so that this attempt hears of the stop
        # even if the handler would not.
        stopped: asyncio.Future[None] = loop.create_future()
        context.attach(stopped)
        # The heartbeat's task starts when the first beat is due: most handlers end long
        # before a third of their lease, and a timer costs far less than a task.
        beats: list[asyncio.Task[None]] = []
        due = loop.call_at(
            context.last_write + context.lease_seconds / 3,
            lambda: beats.append(loop.create_task(self._heartbeat(context))),
        )
        stopping = False
        try:
            done, _ = await asyncio.wait(
                {running, stopped}, timeout=handler.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                context.stop("timed out")
            if not running.done():
                stopping = True
                await self._stop_handler(context, running)
        finally:
            due.cancel()
            for heartbeat in beats:
                heartbeat.cancel()
            if not stopping and not running.done():
                # This task itself was cancelled: the handler goes too.
                await asyncio.shield(self._stop_handler(context, running))
            ended = await asyncio.gather(*beats, return_exceptions=True)
            for beat in ended:
                if isinstance(beat, Exception):
                    _log.error("job %s: its heartbeat failed", job.id, exc_info=beat)
        return self._outcome(context, handler, running)

    async def _stop_handler(self, context: JobContext, running: asyncio.Future[JSONValue]) -> None:
        """Cancel the handler and give it ``ABANDON_AFTER`` seconds (at most a third of
        its lease) to end; a task that goes on after that is abandoned (its writes are
        ignored), a thread is left to finish on its own."""
        running.cancel()
        if not isinstance(running, asyncio.Task):
            return
        job = context.job
        await asyncio.wait({running}, timeout=min(ABANDON_AFTER, context.lease_seconds / 3))
        if not running.done():
            _log.error(
                "job %s attempt %d: its handler went on %g s after it was cancelled; "
                "abandoning it (its writes are ignored)",
                job.id,
                job.attempt,
                min(ABANDON_AFTER, context.lease_seconds / 3),
            )
            self.abandoned.add(running)
            running.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[JSONValue]) -> None:
        self.abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.info("an abandoned handler ended: %r", task.exception())

    async def _heartbeat(self, context: JobContext) -> None:
        loop = asyncio.get_running_loop()
        interval = context.lease_seconds / 3
        while not context.cancelled:
            due = context.last_write + interval
            if loop.time() < due:
                await asyncio.sleep(due - loop.time())
                continue
            before = context.last_write
            await context.heartbeat()
            if context.last_write == before and not context.cancelled:
                # Not written (the store is unreachable): try again soon, within the lease.
                await asyncio.sleep(interval / 4)

    def _outcome(  # noqa: PLR0911 - one return for each way an attempt can end
        self, context: JobContext, handler: Handler, running: asyncio.Future[Any]
    ) -> _Outcome:
        reason = context.stop_reason
        if reason in ("cancelled", "lease lost"):
            return _Drop(reason)
        if reason == "shutting down":
            return _Release()
        attempts_made = context.job.attempt - context.job.attempt_offset
        final = handler.gives_up_after(attempts_made)
        if reason == "timed out":
            message = f"the handler ran longer than its timeout of {handler.timeout:g} s"
            return _Fail({"message": message, "code": "timeout"}, retryable=not final)
        if not running.done() or running.cancelled():  # abandoned, or cancelled
            return _Fail({"message": "the handler was cancelled", "code": "cancelled"}, not final)
        exc = running.exception()
        if exc is None:
            return _Complete(running.result())
        if isinstance(exc, Fail):
            return _Fail(_handler_error(exc), retryable=False)
        if isinstance(exc, Retry):
            return _Fail(_handler_error(exc), retryable=not final, retry_after=exc.after)
        if isinstance(exc, Snooze):
            return _Snooze(exc.delay)
        _log.error("job %s attempt %d raised", context.job.id, context.job.attempt, exc_info=exc)
        return _Fail(error_of(exc), retryable=not final)

    async def _report(self, context: JobContext, outcome: _Outcome) -> None:
        job = context.job
        if isinstance(outcome, _Drop):
            _log.info(
                "job %s attempt %d: %s; its work is dropped", job.id, job.attempt, outcome.reason
            )
            self._outcomes["dropped"] += 1
            return
        try:
            if isinstance(outcome, _Complete):
                await self._complete(job, outcome.result)
            elif isinstance(outcome, _Fail):
                await self._fail(job, outcome)
            elif isinstance(outcome, _Snooze):
                await self._snooze(job, outcome.delay)
            else:
                await self._write(lambda: self.transport.release(job.id, job.attempt))
                _log.info("job %s handed back unfinished (attempt not spent)", job.id)
                self._outcomes["released"] += 1
        except LeaseLost as lost:
            _log.warning("job %s attempt %d: %s", job.id, job.attempt, lost)
            self._outcomes["dropped"] += 1
        except JobdeskError as exc:
            _log.error("job %s: could not report its outcome (%s); it will run again", job.id, exc)
            self._outcomes["unreported"] += 1

    async def _snooze(self, job: Job, delay: float) -> None:
        try:
            await self._write(lambda: self.transport.snooze(job.id, job.attempt, delay))
        except InvalidInput as refused:  # a delay out of range: a bug in the handler
            _log.error("job %s: its snooze was refused (%s); failing the attempt", job.id, refused)
            error = {"message": f"the handler's snooze was refused: {refused}", "code": "snooze"}
            await self._fail(job, _Fail(error, retryable=True))
            return
        _log.info("job %s snoozed for %g s (attempt not spent)", job.id, delay)
        self._outcomes["snoozed"] += 1

    async def _complete(self, job: Job, result: JSONValue) -> None:
        with tracing.settle(job.type, job.id, "complete"):
            outcome = await self._write(
                lambda: self._batcher.complete(Completion(job.id, job.attempt, result))
            )
        if isinstance(outcome, InvalidInput):
            _log.error("job %s: its result was refused: %s", job.id, outcome)
            error = {
                "message": f"the handler's result was refused: {outcome}",
                "code": "invalid_result",
            }
            await self._fail(job, _Fail(error, retryable=False))
        elif isinstance(outcome, JobdeskError):
            raise outcome
        else:
            _log.info("job %s completed (attempt %d)", job.id, job.attempt)
            self._outcomes["completed"] += 1

    async def _fail(self, job: Job, outcome: _Fail) -> None:
        def send(error: dict[str, JSONValue]) -> Awaitable[Job]:
            return self.transport.fail(
                job.id,
                job.attempt,
                error,
                retryable=outcome.retryable,
                retry_after=outcome.retry_after,
            )

        with tracing.settle(job.type, job.id, "fail"):
            try:
                failed = await self._write(lambda: send(outcome.error))
            except InvalidInput as refused:  # a Retry or Fail whose code or details broke a rule
                error = {"message": outcome.error["message"], "code": "invalid_error"}
                _log.error(
                    "job %s: its error was refused (%s); storing the message only",
                    job.id,
                    refused,
                )
                failed = await self._write(lambda: send(error))
        if failed.status is JobStatus.PENDING:
            _log.info(
                "job %s attempt %d failed; it will be retried: %s",
                job.id,
                job.attempt,
                outcome.error["message"],
            )
            self._outcomes["retried"] += 1
        else:
            _log.info("job %s failed for good: %s", job.id, outcome.error["message"])
            self._outcomes["failed"] += 1

    async def _write(self, write: Callable[[], Awaitable[T]]) -> T:
        """A final write, tried again while the store is unavailable (a few times)."""
        for delay in WRITE_RETRY_DELAYS:
            try:
                return await write()
            except StoreUnavailable as exc:
                _log.warning("a write failed (%s); trying again in %g s", exc, delay)
                await asyncio.sleep(delay)
        return await write()

"""WorkerRuntime: one loop that claims jobs, runs their handlers and reports how they ended.

The loop wakes on a change notification (a job became pending), on the poll
interval, when a slot frees up, or on stop. It claims up to the free slots in
one call and runs each job in its own task, in one TaskGroup; each running job
holds one of ``concurrency`` slots. :mod:`jobdesk.worker.attempt` runs each job
to its end (handler, heartbeat, timeout, final write); completions go through
one :class:`~jobdesk.worker.batching.CompletionBatcher`, which claims the next
jobs for the free slots with each commit (one round trip per cycle while work
keeps coming); the loop claims only while no commit is on its way. Beside the
loop, a reaper requeues any worker's expired leases now and then.

The slots and the line of jobs claimed ahead are :mod:`jobdesk.worker.slots`'s;
what wakes the loop is :mod:`jobdesk.worker.wakeup`'s.

Stopping: :meth:`WorkerRuntime.stop` (SIGTERM or SIGINT with ``handle_signals=True``)
stops claiming and gives running jobs ``grace`` seconds to finish; the jobs
still running then are handed back with ``release_job``, their attempt unspent.
A second stop skips the rest of the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections import Counter
from collections.abc import Collection, Iterator

from jobdesk import validation
from jobdesk.errors import InvalidInput, JobdeskError, Unauthorized
from jobdesk.models import Job
from jobdesk.worker.attempt import AttemptRunner
from jobdesk.worker.batching import MAX_COMPLETIONS_PER_COMMIT, CompletionBatcher
from jobdesk.worker.context import JobContext
from jobdesk.worker.registry import Registry
from jobdesk.worker.slots import MAX_CLAIM, Slots
from jobdesk.worker.transport import Transport
from jobdesk.worker.wakeup import RESYNC_SPACING, Wakeup

# MAX_CLAIM and RESYNC_SPACING are re-exported: tests and tuning read them from here.
__all__ = ["MAX_CLAIM", "RESYNC_SPACING", "SLOT_GATHER", "WorkerRuntime"]

_log = logging.getLogger("jobdesk.worker")

#: the longest a free slot waits for others to free up before it is claimed alone
SLOT_GATHER = 0.005


class WorkerRuntime:
    """Runs the handlers of a :class:`~jobdesk.worker.Registry` on jobs claimed through a
    :class:`~jobdesk.worker.Transport`.

    ``concurrency`` jobs run at once. ``types`` narrows the registry's types.
    ``poll_interval`` is how often the queue is looked at without a notification;
    ``grace`` how long running jobs may finish after a stop; ``cancel_grace`` how
    long a handler may go on after its user cancelled; ``reap_interval`` how often
    expired leases (any worker's) are requeued; ``schedule_interval`` how often due
    schedules are fired (on the database only: through a remote server, the server
    does it; None turns it off).

    ``prefetch`` is how many claimed jobs may wait in the worker for a slot, so
    that a slot that frees up starts its next job at once while the next claim
    (with the last batch's completions) is on its way, and a busy worker's
    commits carry many jobs each. ``None`` (the default) decides by itself: as
    many jobs as the slots get through while ``PREFETCH_CLAIMS`` claims come
    back, and never more than ``PREFETCH_HORIZON`` seconds of work, going by how
    long claims and handlers took recently (none before the first job ends;
    none for jobs much longer than a claim; up to ``MAX_CLAIM`` for jobs of a
    millisecond). Jobs held here were taken from the fair order ahead of any
    job created since, so holding few keeps another user's new job from waiting
    behind them; and slow jobs stay in the queue for other workers. A waiting
    job runs under the lease of its claim: one that waited a third of it (the
    guess was wrong: slower jobs came) is handed back unspent for any worker to
    take, and a stop hands back the rest.

    ``commits_in_flight`` (1 to 4; None: the transport's, 1 on the database, 2 over
    HTTP) is how many completion batches may be on their way at once: with 2, the
    next goes out while the last is being answered, so the worker and the store work
    at the same time. One worker drains faster (bench/RESULTS.md: about a quarter,
    on the database, 2 cores), at the price of smaller batches and more of the
    database's CPU per job: where many workers share one database, 1 leaves it more.

    The worker checks its token as often as it reaps (and the server checks
    each request of a remote worker): once the token is revoked it stops at
    once, hands its jobs back, and :meth:`run` raises
    :class:`~jobdesk.errors.Unauthorized`. The token's job types narrow
    ``types``; a worker with no type left is refused.
    """

    def __init__(
        self,
        registry: Registry,
        transport: Transport,
        *,
        concurrency: int = 1,
        types: Collection[str] | None = None,
        poll_interval: float = 1.0,
        grace: float = 30.0,
        cancel_grace: float = 5.0,
        reap_interval: float = 30.0,
        prefetch: int | None = None,
        schedule_interval: float | None = 1.0,
        commits_in_flight: int | None = None,
    ) -> None:
        if not isinstance(registry, Registry):
            raise InvalidInput("registry", "must be a jobdesk.worker.Registry")
        if not len(registry):
            raise InvalidInput("registry", "has no handlers; add one with @registry.handler(type)")
        asked = validation.job_types(types)
        unknown = sorted((asked or frozenset()) - registry.types)
        if unknown:
            raise InvalidInput("types", f"no handler is registered for {', '.join(unknown)}")
        self.registry = registry
        self.transport = transport
        self.types = _allowed_types(asked or registry.types, transport)
        self.concurrency = validation.integer("concurrency", concurrency, 1, 10_000)
        self.poll_interval = validation.interval("poll_interval", poll_interval)
        self.grace = validation.interval("grace", grace, zero=True)
        self.cancel_grace = validation.interval("cancel_grace", cancel_grace, zero=True)
        self.reap_interval = validation.interval("reap_interval", reap_interval)
        self.schedule_interval = None
        if schedule_interval is not None:
            self.schedule_interval = validation.interval("schedule_interval", schedule_interval)
        self.prefetch = (
            None if prefetch is None else validation.integer("prefetch", prefetch, 0, 10_000)
        )
        #: how the jobs run so far ended: completed, failed, retried, released, dropped
        self.outcomes: Counter[str] = Counter()
        self._slots = Slots(self.concurrency, self.prefetch)
        # Outcomes waiting for their write: a job gives its slot back once its handler
        # stops and its outcome holds one of these, so the next jobs run while the last
        # batch is written; at most a full batch (and a slot's worth) waits.
        self._writes = asyncio.Semaphore(self.concurrency + MAX_COMPLETIONS_PER_COMMIT)
        self._jobs: dict[asyncio.Task[None], JobContext] = {}
        self._batcher = CompletionBatcher(
            transport,
            refill=_Refill(self),
            in_flight=validation.integer(
                "commits_in_flight",
                getattr(transport, "commits_in_flight", 1)
                if commits_in_flight is None
                else commits_in_flight,
                1,
                4,
            ),
        )
        self._group: asyncio.TaskGroup | None = None
        self._attempts = AttemptRunner(transport, self._batcher, self.outcomes)
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._wake = Wakeup()
        self._ran = False
        #: why the worker must stop for good (its token was revoked), raised by run()
        self._fatal: JobdeskError | None = None

    @property
    def running(self) -> list[Job]:
        """The jobs running now, as they were claimed."""
        return [context.job for context in self._jobs.values()]

    @property
    def abandoned(self) -> int:
        """Handlers still running after they were cancelled and left (they ignored it).

        Their writes are ignored. A process that is about to exit need not wait
        for them (``jobdesk worker`` does not).
        """
        return len(self._attempts.abandoned)

    @property
    def batch_sizes(self) -> list[int]:
        """How many completions each ``complete_jobs`` call carried, in order."""
        return self._batcher.batch_sizes

    def stop(self) -> None:
        """Stop claiming and let running jobs finish within ``grace``, then hand them back.

        A second call skips the rest of the grace period. Call it on the loop
        that runs the worker (signal handlers from ``run(handle_signals=True)`` do).
        """
        if self._stop.is_set():
            self._abort.set()
        self._stop.set()
        self._wake.set()

    async def run(self, *, until_empty: bool = False, handle_signals: bool = False) -> None:
        """Claim and run jobs until :meth:`stop`, then wind down.

        ``until_empty`` returns once no due job is left and none is running (drain
        mode, for tests and scripts). ``handle_signals`` makes SIGTERM and SIGINT
        call :meth:`stop`. A worker runs once.
        """
        if self._ran:
            raise RuntimeError("a WorkerRuntime runs once; make a new one")
        self._ran = True
        try:
            with self._signal_handlers(handle_signals):
                await self._supervise(until_empty=until_empty)
        except BaseExceptionGroup as errors:
            # The TaskGroup wraps what stopped it; one error is reported as itself.
            if len(errors.exceptions) == 1:
                raise errors.exceptions[0] from None
            raise
        _log.info("worker %s stopped: %s", self.transport.worker_name, dict(self.outcomes))
        if self._fatal is not None:
            raise self._fatal

    # -- the loop -------------------------------------------------------------------------

    async def _supervise(self, *, until_empty: bool) -> None:
        async with self.transport.changes() as feed, asyncio.TaskGroup() as group:
            self._group = group
            helpers = [
                group.create_task(self._batcher.run(), name="jobdesk-batcher"),
                group.create_task(
                    self._wake.listen(feed, self.types, self.poll_interval),
                    name="jobdesk-listener",
                ),
                group.create_task(self._check_periodically(), name="jobdesk-reaper"),
            ]
            if self.schedule_interval is not None:
                helpers.append(group.create_task(self._fire_schedules(), name="jobdesk-schedules"))
            try:
                await self._reap()  # jobs a crashed worker left behind come back first
                await self._claim_loop(until_empty=until_empty)
                await self._wind_down()
            finally:
                for helper in helpers:
                    helper.cancel()
                self._wake.cancel()

    async def _claim_loop(self, *, until_empty: bool) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            await self._gather_slots(loop)
            self._wake.clear()
            await self._hand_back_stale()
            if self._batcher.busy:
                # The commit on its way claims for the free slots: wait for it.
                await self._wake.poll(self.poll_interval, loop)
                continue
            # A claim that came back short since the last sign of work needs no twin: the
            # batcher claims for the slots its completions free, so an idle worker would
            # otherwise claim once more, for nothing, after each job it completes.
            free = 0 if self._slots.seen_empty(self._wake.work_at) else self._reserve()
            asked_at = loop.time()  # the lease starts before the answer is read
            claimed: list[Job] = []
            answered = False
            try:
                if free:
                    claimed = await self.transport.claim(self.types, free)
                    answered = True
            except Unauthorized as exc:
                self._revoked(exc)
            except JobdeskError as exc:
                if until_empty:  # whether the queue is empty is unknown: say so
                    raise
                _log.warning(
                    "could not claim jobs: %s; trying again in %g s", exc, self.poll_interval
                )
            finally:
                self._fill(claimed, free, asked_at, answered=answered)
            if (
                until_empty
                and not claimed
                and not self._jobs
                and self._slots.nothing_waiting
                and not self._batcher.busy
            ):
                return
            await self._wake.poll(self.poll_interval, loop)

    def _reserve(self) -> int:
        """Room for one claim (:meth:`Slots.reserve`), none once stopping."""
        if self._stop.is_set():
            return 0
        return self._slots.reserve()

    def _fill(self, claimed: list[Job], reserved: int, asked_at: float, *, answered: bool) -> None:
        """Start each claimed job in a free slot, or keep it waiting for one.

        ``asked_at`` is when the claim was sent: the lease may have run since (a
        process paused while the answer travelled), so the job's time is counted
        from there, and a job whose claim is already stale is handed back.
        ``answered`` says the claim was made and answered (not refused, not lost).
        """
        self._slots.settle(claimed, reserved, asked_at, answered=answered)
        while not self._stop.is_set() and (waiting := self._slots.next_to_start()):
            self._start(*waiting)
        if claimed:
            _log.info("claimed %d job(s): %s", len(claimed), ", ".join(j.id for j in claimed))

    def _start(self, job: Job, claimed_at: float) -> None:
        assert self._group is not None
        context = JobContext(
            job, self.transport, cancel_grace=self.cancel_grace, claimed_at=claimed_at
        )
        task = self._group.create_task(self._run_job(context), name=f"jobdesk-job-{job.id}")
        self._jobs[task] = context

    def _slot_freed(self, run_time: float) -> None:
        """A handler stopped after ``run_time`` seconds: its slot takes a waiting job."""
        self._slots.handler_stopped(run_time)
        if not self._stop.is_set():
            self._slots.set_aside_stale()  # the loop hands them back
            if waiting := self._slots.next_to_start():
                self._start(*waiting)
        self._wake.set()

    async def _hand_back_stale(self) -> None:
        await self._release(self._slots.take_stale())

    async def _gather_slots(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let slots that free up together be claimed together, in one call.

        While jobs run and fewer than half the slots are free, wait a moment
        (``SLOT_GATHER`` at most) for more: handlers that finish in the same
        instant then make one claim of many jobs, not many claims of one.
        """
        wanted = max(1, min(self.concurrency, MAX_CLAIM) // 2)
        deadline = loop.time() + SLOT_GATHER
        while (
            self._slots.busy
            and self.concurrency - self._slots.busy < wanted
            and not self._stop.is_set()
            and loop.time() < deadline
        ):
            self._wake.clear()
            await self._wake.sleep(deadline - loop.time(), loop)

    async def _reap(self) -> None:
        try:
            requeued = await self.transport.reap()
        except JobdeskError as exc:
            _log.warning("could not requeue expired leases: %s", exc)
        else:
            if requeued:
                _log.info("requeued %d job(s) whose lease expired", requeued)

    async def _check_periodically(self) -> None:
        """Reap expired leases and check the token, every ``reap_interval`` or so."""
        while True:
            # Jitter, so that many workers started together do not reap in step.
            await asyncio.sleep(self.reap_interval * random.uniform(0.75, 1.25))  # noqa: S311 - not for security
            try:
                await self.transport.verify()
            except Unauthorized as exc:
                self._revoked(exc)
                return
            except JobdeskError as exc:
                _log.warning("could not check the worker token: %s", exc)
            await self._reap()

    async def _fire_schedules(self) -> None:
        """Fire due schedules every ``schedule_interval``, while the transport can."""
        assert self.schedule_interval is not None
        while True:
            await asyncio.sleep(self.schedule_interval)
            try:
                made = await self.transport.run_schedules()
            except JobdeskError as exc:
                _log.warning("could not fire due schedules: %s", exc)
                continue
            if made is None:
                return  # a remote worker: its server fires them
            if made:
                _log.info("schedules made %d job(s)", made)

    def _revoked(self, exc: Unauthorized) -> None:
        """The token no longer holds: stop now, handing the jobs back."""
        if self._fatal is None:
            _log.error("worker %s must stop: %s", self.transport.worker_name, exc)
            self._fatal = exc
        self.stop()
        self.stop()

    async def _wind_down(self) -> None:
        await self._hand_back_waiting()
        if not self._jobs:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        _log.info("stopping: %d job(s) may finish within %g s", len(self._jobs), self.grace)
        while self._jobs and not self._abort.is_set() and loop.time() < deadline:
            self._wake.clear()
            await self._wake.sleep(deadline - loop.time(), loop)
        for context in self._jobs.values():
            context.stop("shutting down")
        if self._jobs:
            await asyncio.wait(list(self._jobs))
        await self._hand_back_waiting()  # claimed by the last commits

    async def _hand_back_waiting(self) -> None:
        """Release the prefetched jobs that never started: their attempts stay unspent."""
        await self._release(self._slots.take_all())

    async def _release(self, jobs: list[Job]) -> None:
        for job in jobs:
            try:
                await self.transport.release(job.id, job.attempt)
            except JobdeskError as exc:
                _log.warning(
                    "job %s: could not hand it back (%s); its lease will run out", job.id, exc
                )
            else:
                self.outcomes["released"] += 1

    @contextlib.contextmanager
    def _signal_handlers(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for number in signals:
            loop.add_signal_handler(number, self._on_signal, number)
        try:
            yield
        finally:
            for number in signals:
                loop.remove_signal_handler(number)

    def _on_signal(self, number: signal.Signals) -> None:
        if self._stop.is_set():
            _log.warning("%s again: handing back the running jobs now", number.name)
        else:
            _log.info(
                "%s: no new jobs; running ones have %g s to finish (send it again to stop now)",
                number.name,
                self.grace,
            )
        self.stop()

    # -- one job --------------------------------------------------------------------------

    async def _run_job(self, context: JobContext) -> None:
        job = context.job
        slot_held, writing = True, False
        started = asyncio.get_running_loop().time()

        async def handler_done() -> None:
            # The handler has stopped: its slot may take the next job while the outcome
            # waits for its write (under a write permit, so that writes cannot pile up).
            nonlocal slot_held, writing
            await self._writes.acquire()
            writing = True
            slot_held = False
            self._slot_freed(asyncio.get_running_loop().time() - started)

        try:
            await self._attempts.run(context, self.registry.get(job.type), handler_done)
        except Exception:
            # A bug here must not take the other jobs down: the lease will run out.
            _log.exception("job %s: unexpected error in the worker", job.id)
            self.outcomes["crashed"] += 1
        finally:
            task = asyncio.current_task()
            assert task is not None
            self._jobs.pop(task, None)
            if writing:
                self._writes.release()
            if slot_held:
                self._slot_freed(asyncio.get_running_loop().time() - started)
            self._wake.set()


class _Refill:
    """The worker's free slots as the completion batcher's :class:`Refill`."""

    def __init__(self, worker: WorkerRuntime) -> None:
        self._worker = worker
        self.types = worker.types

    def reserve(self) -> int:
        return self._worker._reserve()

    def fill(self, jobs: list[Job], reserved: int, asked_at: float, *, answered: bool) -> None:
        self._worker._fill(jobs, reserved, asked_at, answered=answered)


def _allowed_types(types: frozenset[str], transport: Transport) -> frozenset[str]:
    """``types`` narrowed to what the worker token allows; refused if none is left."""
    allowed = transport.token_types
    if allowed is None or types <= allowed:
        return types
    kept = types & allowed
    if not kept:
        raise InvalidInput(
            "types",
            f"the worker token {transport.worker_name!r} may only take "
            f"{', '.join(sorted(allowed))}; none of them is handled here",
        )
    _log.warning(
        "worker token %r may not take %s: this worker leaves those jobs to others",
        transport.worker_name,
        ", ".join(sorted(types - kept)),
    )
    return kept

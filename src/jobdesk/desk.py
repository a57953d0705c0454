"""JobDesk: every jobdesk operation, async, over one store.

The host application authenticates its users; jobdesk authorises: every user
operation names the acting ``user_id`` and sees only that user's jobs. Worker
operations need the :class:`~jobdesk.models.Worker` that ``verify_worker_token``
returns. Arguments are validated here, before anything reaches the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection, Generator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any

from jobdesk import cursors, lifecycle, tokens, validation
from jobdesk.changes import Subscription
from jobdesk.errors import InvalidInput, JobdeskError, JobNotFound, Unauthorized
from jobdesk.ids import new_job_id
from jobdesk.limits import Limits
from jobdesk.models import (
    Completion,
    Job,
    JobEvent,
    JobPage,
    JobSpec,
    JobStatus,
    JSONValue,
    NewJob,
    ProgressReply,
    QueueStats,
    ThroughputMinute,
    TokenRecord,
    UserLimits,
    UserLoad,
    UserUsage,
    Worker,
    WorkerTokenInfo,
)
from jobdesk.store import Change, Clock, Store, completion_changes, open_store

__all__ = ["DEFAULT_URL", "JobDesk"]

DEFAULT_URL = "sqlite:///jobdesk.db"
_REAPER_BATCH = 500
_PRUNE_BATCH = 1000
_MAX_WINDOW = timedelta(days=1)


class JobDesk:
    """The jobdesk operations over one store. Open with :meth:`JobDesk.open`."""

    def __init__(
        self,
        store: Store,
        *,
        limits: Limits | None = None,
        types: Collection[str] | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        #: the registered job types; None accepts any well-formed type
        self.types = None if types is None else validation.job_types(types, field="types")
        self._secret = b""

    @classmethod
    def open(
        cls,
        url: str = DEFAULT_URL,
        *,
        limits: Limits | None = None,
        types: Collection[str] | None = None,
        clock: Clock | None = None,
    ) -> _Opening:
        """Open a desk on a database URL, applying pending migrations.

        Use as ``async with JobDesk.open(url) as desk:`` or ``desk = await
        JobDesk.open(url)`` followed by ``await desk.close()``. ``types`` registers
        the job types that ``create_job`` accepts; ``clock`` replaces the store's
        clock (tests use it to move time).
        """
        if limits is not None and not isinstance(limits, Limits):
            raise InvalidInput("limits", "must be a jobdesk.Limits")
        return _Opening(cls(open_store(url, clock=clock), limits=limits, types=types))

    async def start(self) -> None:
        """Open the store (connect, migrate). :meth:`open` does this for you."""
        await self.store.open()
        self._secret = await self.store.secret()

    async def close(self) -> None:
        """Close the store's connections."""
        await self.store.close()

    async def now(self) -> datetime:
        """The store's clock: the time every rule is judged by (a test's manual clock too)."""
        return await self.store.now()

    def signing_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` (``"csrf"``, say), derived from the deployment's secret.

        Faces sign what they hand out (forms, sessions) with it; each purpose gets its
        own key, so a signature made for one is worthless for another.
        """
        if not isinstance(purpose, str) or not purpose:
            raise InvalidInput("purpose", "must be a non-empty string")
        return hmac.new(self._secret, b"purpose\x1f" + purpose.encode(), hashlib.sha256).digest()

    async def __aenter__(self) -> JobDesk:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _update(self, job_id: str, change: Change, user_id: str | None = None) -> Job:
        [outcome] = await self.store.update_jobs([(job_id, change)], self.limits, user_id=user_id)
        if isinstance(outcome, JobdeskError):
            raise outcome
        return outcome

    # -- user operations ------------------------------------------------------------------

    async def create_job(
        self,
        user_id: str,
        type: str,  # noqa: A002 - the operation's contract names it "type"
        input: JSONValue,  # noqa: A002 - the operation's contract names it "input"
        project_id: str | None = None,
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Store a ``pending`` job for ``user_id`` within that user's limits.

        Raises :class:`~jobdesk.errors.InvalidInput` for a bad argument and
        :class:`~jobdesk.errors.RateLimited` when the user has too many active jobs
        or created too many today. With ``idempotency_key``, a repeated call for the
        same user returns the first job and counts once.
        """
        spec = self._new_job(
            validation.principal_id("user_id", user_id),
            type,
            input,
            project_id,
            priority=priority,
            run_at=run_at,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
        )
        job, _ = await self.store.insert_job(spec, self.limits)
        return job

    async def create_jobs(self, user_id: str, jobs: Sequence[JobSpec]) -> list[Job]:
        """Store several ``pending`` jobs for ``user_id`` in one transaction: all or none.

        Each :class:`~jobdesk.JobSpec` holds what ``create_job`` takes for one job
        (no idempotency key: use ``create_job`` for that). The user's limits hold for
        the whole batch: if it does not fit (active jobs, or jobs created today),
        :class:`~jobdesk.errors.RateLimited` and nothing is stored. Returns the jobs,
        in order. :class:`~jobdesk.errors.InvalidInput` names the entry
        (``jobs[3].input``) when one is bad; then nothing is stored either.
        """
        user_id = validation.principal_id("user_id", user_id)
        if (
            not isinstance(jobs, Sequence)
            or isinstance(jobs, str | bytes)
            or not 1 <= len(jobs) <= validation.MAX_BATCH
        ):
            raise InvalidInput("jobs", f"must be a list of 1-{validation.MAX_BATCH} JobSpec")
        specs: list[NewJob] = []
        for index, item in enumerate(jobs):
            if not isinstance(item, JobSpec):
                raise InvalidInput(f"jobs[{index}]", "must be a jobdesk.JobSpec")
            try:
                specs.append(
                    self._new_job(
                        user_id,
                        item.type,
                        item.input,
                        item.project_id,
                        priority=item.priority,
                        run_at=item.run_at,
                        max_attempts=item.max_attempts,
                    )
                )
            except InvalidInput as bad:
                raise InvalidInput(f"jobs[{index}].{bad.field}", bad.rule) from None
        return await self.store.insert_jobs(specs, self.limits)

    def _new_job(
        self,
        user_id: str,
        type: str,  # noqa: A002 - the operation's contract names it "type"
        input: JSONValue,  # noqa: A002 - the operation's contract names it "input"
        project_id: str | None,
        *,
        priority: int,
        run_at: datetime | None,
        max_attempts: int | None,
        idempotency_key: str | None = None,
    ) -> NewJob:
        """A checked request for one job of ``user_id`` (already checked)."""
        input_json = validation.json_document(
            "input", input, self.limits.max_input_bytes, self.limits.max_input_depth
        )
        return NewJob(
            id=new_job_id(),
            user_id=user_id,
            project_id=validation.optional_principal_id("project_id", project_id),
            type=validation.job_type(type, self.types),
            # The job holds the input as every later read returns it (tuples become
            # lists), not the caller's object, which the caller may go on changing.
            input=json.loads(input_json),
            input_json=input_json,
            priority=validation.integer(
                "priority", priority, -validation.MAX_PRIORITY, validation.MAX_PRIORITY
            ),
            run_at=None if run_at is None else validation.aware_datetime("run_at", run_at),
            max_attempts=(
                self.limits.max_attempts
                if max_attempts is None
                else validation.integer("max_attempts", max_attempts, 1, validation.MAX_ATTEMPTS)
            ),
            idempotency_key=validation.idempotency_key(idempotency_key),
        )

    async def get_job_status(self, job_id: str, user_id: str) -> Job:
        """One of the user's jobs; :class:`~jobdesk.errors.JobNotFound` for any other id."""
        job_id = validation.job_id(job_id)
        user_id = validation.principal_id("user_id", user_id)
        job = await self.store.get_job(job_id, user_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def get_user_jobs(
        self,
        user_id: str,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        type: str | Sequence[str] | None = None,  # noqa: A002 - the contract's name
        project_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """The user's jobs, newest first, filtered, one page at a time.

        Pass the returned ``next_cursor`` back as ``cursor`` for the next page; it
        is None on the last page. Cursors are signed: an altered one, or one issued
        to another user, raises :class:`~jobdesk.errors.InvalidInput`.
        """
        user_id = validation.principal_id("user_id", user_id)
        limit = validation.page_limit(limit)
        before_id = None if cursor is None else cursors.decode(self._secret, user_id, cursor)
        jobs = await self.store.list_jobs(
            user_id,
            statuses=validation.statuses(status),
            types=validation.job_types(type, field="type"),
            project_id=validation.optional_principal_id("project_id", project_id),
            before_id=before_id,
            limit=limit + 1,
        )
        if len(jobs) <= limit:
            return JobPage(jobs, None)
        items = jobs[:limit]
        return JobPage(items, cursors.encode(self._secret, user_id, items[-1].id))

    async def get_user_jobs_changed_since(
        self, user_id: str, since: datetime, *, limit: int = 100
    ) -> list[Job]:
        """The user's jobs whose last change is at or after ``since``, oldest change first.

        For live views that reconnect: re-read what changed while they were away. To
        page, pass the last job's ``updated_at`` as ``since`` (a job changed at that
        very instant comes again: a state sent twice is harmless).
        """
        user_id = validation.principal_id("user_id", user_id)
        since = validation.aware_datetime("since", since)
        limit = validation.page_limit(limit)
        return await self.store.list_jobs_changed_since(user_id, since, limit)

    async def get_job_history(self, job_id: str, user_id: str) -> list[JobEvent]:
        """The status changes of one of the user's jobs, oldest first: its attempts and errors."""
        job = await self.get_job_status(job_id, user_id)
        return await self.store.job_events(job.id)

    async def cancel_job(self, job_id: str, user_id: str) -> Job:
        """Cancel a pending or processing job at once; its active slot is free.

        A processing job's worker learns of it on its next progress report or
        heartbeat, and its later writes are refused. Cancelling a cancelled job
        returns it unchanged; a completed or failed one raises
        :class:`~jobdesk.errors.InvalidTransition`.
        """
        job_id = validation.job_id(job_id)
        user_id = validation.principal_id("user_id", user_id)
        return await self._update(job_id, lifecycle.cancel, user_id)

    async def retry_job(self, job_id: str, user_id: str) -> Job:
        """Put a failed or cancelled job back to ``pending`` with a fresh budget of attempts.

        It counts against the active-job limit again (:class:`~jobdesk.errors.RateLimited`);
        its history keeps the earlier attempts.
        """
        job_id = validation.job_id(job_id)
        user_id = validation.principal_id("user_id", user_id)
        return await self._update(job_id, lifecycle.retry, user_id)

    async def get_user_usage(self, user_id: str) -> UserUsage:
        """The user's effective limits and how much of them is in use."""
        return await self.store.user_usage(validation.principal_id("user_id", user_id), self.limits)

    async def set_user_limits(
        self, user_id: str, *, max_active: int | None = None, max_daily: int | None = None
    ) -> None:
        """Override the default limits for one user (a paid plan, say); None restores a default."""
        user_id = validation.principal_id("user_id", user_id)
        overrides = UserLimits(
            None
            if max_active is None
            else validation.integer("max_active", max_active, 0, 1_000_000),
            None
            if max_daily is None
            else validation.integer("max_daily", max_daily, 0, 100_000_000),
        )
        await self.store.set_user_limits(user_id, overrides)

    # -- worker operations ----------------------------------------------------------------

    async def verify_worker_token(self, token: str) -> Worker:
        """The :class:`Worker` a token stands for, or :class:`~jobdesk.errors.Unauthorized`.

        Verify once per connection or request: a token revoked later stops working
        at its next verification.
        """
        record = await self._verify(token, "worker")
        return Worker(
            record.subject, record.types, self._worker_proof(record.subject, record.types)
        )

    def _worker_proof(self, name: str, types: frozenset[str] | None) -> bytes:
        scope = "*" if types is None else ",".join(sorted(types))
        message = f"worker\x1f{name}\x1f{scope}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def _verified(self, worker: object) -> Worker:
        worker = validation.worker(worker)
        if not hmac.compare_digest(worker.proof, self._worker_proof(worker.name, worker.types)):
            raise Unauthorized("this Worker was not made by verify_worker_token on this deployment")
        return worker

    def _worker_types(self, worker: Worker, types: object) -> frozenset[str] | None:
        asked = validation.job_types(types)
        if worker.types is None:
            return asked
        return worker.types if asked is None else worker.types & asked

    async def get_pending_jobs(
        self, worker: Worker, *, types: str | Sequence[str] | None = None, limit: int = 10
    ) -> list[Job]:
        """The due pending jobs this worker may take, in the order they would be claimed."""
        worker = self._verified(worker)
        limit = validation.page_limit(limit)
        allowed = self._worker_types(worker, types)
        if allowed is not None and not allowed:
            return []
        return await self.store.ready_jobs(allowed, limit)

    async def start_job(self, worker: Worker, job_id: str) -> Job:
        """Start one pending, due job for this worker: a new attempt under a new lease.

        :class:`~jobdesk.errors.InvalidTransition` if the job is no longer pending
        (another worker started it, say).
        """
        worker = self._verified(worker)
        job_id = validation.job_id(job_id)
        change = partial(lifecycle.start, worker=worker, lease_seconds=self.limits.lease_seconds)
        return await self._update(job_id, change)

    async def claim_jobs(
        self, worker: Worker, *, types: str | Sequence[str] | None = None, limit: int = 1
    ) -> list[Job]:
        """Atomically start up to ``limit`` due jobs in queue order (the fast path)."""
        worker = self._verified(worker)
        limit = validation.page_limit(limit)
        allowed = self._worker_types(worker, types)
        if allowed is not None and not allowed:
            return []
        return await self.store.claim(worker, allowed, limit, self.limits.lease_seconds)

    async def update_job_progress(
        self,
        worker: Worker,
        job_id: str,
        progress: float,
        message: str | None = None,
        *,
        attempt: int,
    ) -> ProgressReply:
        """Record progress (0-100) and renew the lease; answers whether the user cancelled.

        ``attempt`` is the attempt the worker holds (``job.attempt`` from the claim);
        a stale one raises :class:`~jobdesk.errors.LeaseLost`.
        """
        return await self._report(worker, job_id, attempt, validation.progress(progress), message)

    async def heartbeat_job(self, worker: Worker, job_id: str, *, attempt: int) -> ProgressReply:
        """Renew the lease without new progress; answers whether the user cancelled."""
        return await self._report(worker, job_id, attempt, None, None)

    async def _report(
        self, worker: Worker, job_id: str, attempt: int, progress: float | None, message: str | None
    ) -> ProgressReply:
        worker = self._verified(worker)
        job_id = validation.job_id(job_id)
        change = partial(
            lifecycle.report_progress,
            worker=worker,
            attempt=validation.attempt(attempt),
            lease_seconds=self.limits.lease_seconds,
            progress=progress,
            message=validation.message(message),
        )
        job = await self._update(job_id, change)
        return ProgressReply(job.status is JobStatus.CANCELLED, job.lease_expires_at)

    async def complete_job(
        self, worker: Worker, job_id: str, result: JSONValue = None, *, attempt: int
    ) -> Job:
        """``processing`` -> ``completed`` with ``result`` (JSON)."""
        worker = self._verified(worker)
        job_id = validation.job_id(job_id)
        validation.json_document(
            "result", result, self.limits.max_result_bytes, self.limits.max_input_depth
        )
        change = partial(
            lifecycle.complete,
            worker=worker,
            attempt=validation.attempt(attempt),
            result=result,
        )
        return await self._update(job_id, change)

    async def complete_jobs(
        self, worker: Worker, completions: Sequence[Completion]
    ) -> list[Job | JobdeskError]:
        """Complete several jobs in one transaction: one commit for the whole batch.

        Outcomes come back in order: the completed job, or the error that refused
        that one (:class:`~jobdesk.errors.LeaseLost`, :class:`~jobdesk.errors.JobNotFound`);
        a refusal does not hold back the others. Nothing is acknowledged before the
        commit. Workers use it to group jobs that finish together.
        """
        worker = self._verified(worker)
        checked = self._completions(completions, least=1)
        return await self.store.update_jobs(completion_changes(worker, checked), self.limits)

    async def complete_and_claim_jobs(
        self,
        worker: Worker,
        completions: Sequence[Completion],
        *,
        types: str | Sequence[str] | None = None,
        limit: int = 1,
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        """:meth:`complete_jobs` and :meth:`claim_jobs` in one transaction: a worker's cycle.

        A worker whose jobs just finished hands them in and takes the next ones in
        one round trip and one commit. Returns the completions' outcomes (as
        :meth:`complete_jobs` gives them, in order) and the claimed jobs (as
        :meth:`claim_jobs` gives them). ``completions`` may be empty, and ``limit``
        0 (nothing claimed), but not both.
        """
        worker = self._verified(worker)
        checked = self._completions(completions, least=0)
        limit = validation.integer("limit", limit, 0, validation.MAX_PAGE)
        if not checked and not limit:
            raise InvalidInput("limit", "must be at least 1 when there is nothing to complete")
        allowed = self._worker_types(worker, types)
        if allowed is not None and not allowed:
            limit = 0
        if not checked and not limit:
            return [], []
        return await self.store.complete_and_claim(
            worker,
            checked,
            allowed,
            limit,
            lease_seconds=self.limits.lease_seconds,
            limits=self.limits,
        )

    def _completions(self, completions: Sequence[Completion], *, least: int) -> list[Completion]:
        """``completions`` checked: a list of ``least``-1000 :class:`Completion`, each valid."""
        if (
            not isinstance(completions, Sequence)
            or not least <= len(completions) <= validation.MAX_BATCH
        ):
            raise InvalidInput(
                "completions", f"must be a list of {least}-{validation.MAX_BATCH} Completion"
            )
        checked: list[Completion] = []
        for completion in completions:
            if not isinstance(completion, Completion):
                raise InvalidInput("completions", "must hold jobdesk.Completion items")
            validation.json_document(
                "result",
                completion.result,
                self.limits.max_result_bytes,
                self.limits.max_input_depth,
            )
            checked.append(
                Completion(
                    job_id=validation.job_id(completion.job_id),
                    attempt=validation.attempt(completion.attempt),
                    result=completion.result,
                )
            )
        return checked

    async def fail_job(
        self,
        worker: Worker,
        job_id: str,
        error: str | dict[str, Any] | BaseException,
        *,
        retryable: bool = True,
        attempt: int,
        retry_after: float | None = None,
    ) -> Job:
        """Report a failure: ``pending`` after a backoff while attempts remain, else ``failed``.

        ``error`` is a message or ``{"message", "code"?, "details"?}``; with
        ``retryable=False`` the job fails at once. ``retry_after`` (seconds, at most
        ``Limits.retry_backoff_max_seconds``) replaces the backoff before the next attempt.
        """
        worker = self._verified(worker)
        job_id = validation.job_id(job_id)
        if not isinstance(retryable, bool):
            raise InvalidInput("retryable", "must be True or False")
        change = partial(
            lifecycle.fail,
            worker=worker,
            attempt=validation.attempt(attempt),
            error=validation.error_payload(error),
            retryable=retryable,
            limits=self.limits,
            retry_after=(
                None
                if retry_after is None
                else validation.seconds(
                    "retry_after", retry_after, self.limits.retry_backoff_max_seconds
                )
            ),
        )
        return await self._update(job_id, change)

    async def release_job(self, worker: Worker, job_id: str, *, attempt: int) -> Job:
        """Hand a job back unfinished (the worker is shutting down): ``pending`` at once.

        The attempt does not count against the job's ``max_attempts``.
        """
        worker = self._verified(worker)
        job_id = validation.job_id(job_id)
        change = partial(
            lifecycle.release,
            worker=worker,
            attempt=validation.attempt(attempt),
        )
        return await self._update(job_id, change)

    async def ping(self) -> None:
        """One round trip to the database: :class:`~jobdesk.errors.StoreUnavailable` if down."""
        await self.store.ping()

    async def requeue_expired(self) -> int:
        """Return jobs whose lease ran out to the queue (or fail them); how many.

        Safe to run from many processes at once; workers and servers call it
        periodically.
        """
        total = 0
        while True:
            count = await self.store.requeue_expired(self.limits, _REAPER_BATCH)
            total += count
            if count < _REAPER_BATCH:
                return total

    async def prune_finished(self, older_than: timedelta) -> int:
        """Delete jobs that finished more than ``older_than`` ago, in bounded batches; how many.

        Their history goes with them. Pending and processing jobs are never pruned.
        """
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise InvalidInput("older_than", "must be a non-negative timedelta")
        cutoff = await self.store.now() - older_than
        total = 0
        while True:
            count = await self.store.prune_finished(cutoff, _PRUNE_BATCH)
            total += count
            if count < _PRUNE_BATCH:
                return total

    async def get_queue_stats(self, window: timedelta = timedelta(minutes=5)) -> QueueStats:
        """For operators: queue depth by type and status, workers seen, recent throughput.

        Counts every pending and processing job, and the jobs that finished within
        ``window`` (completed ones are the throughput). A worker is seen if it holds
        a job now or finished one within ``window``.
        """
        if not isinstance(window, timedelta) or window <= timedelta(0):
            raise InvalidInput("window", "must be a positive timedelta")
        now = await self.store.now()
        counts, workers = await self.store.queue_stats(now - window)
        return QueueStats(now, window.total_seconds(), counts, workers)

    async def get_throughput(
        self, window: timedelta = timedelta(hours=1)
    ) -> list[ThroughputMinute]:
        """For operators: jobs created, completed and failed in each minute of ``window``.

        Every minute of the window is there, oldest first, quiet ones with zeros.
        """
        if not isinstance(window, timedelta) or not timedelta(0) < window <= _MAX_WINDOW:
            raise InvalidInput("window", "must be a positive timedelta of at most one day")
        now = await self.store.now()
        first = now.replace(second=0, microsecond=0) - window + timedelta(minutes=1)
        found = {point.minute: point for point in await self.store.throughput(first)}
        minutes = int(window / timedelta(minutes=1))
        return [
            found.get(minute, ThroughputMinute(minute))
            for minute in (first + timedelta(minutes=step) for step in range(minutes))
        ]

    async def get_oldest_pending(self) -> datetime | None:
        """For operators: when the oldest pending job was created; None if none is pending."""
        return await self.store.oldest_pending()

    async def get_failed_jobs(
        self, *, window: timedelta = timedelta(days=1), limit: int = 20
    ) -> list[Job]:
        """For operators: the jobs of any user that failed within ``window``, latest first."""
        if not isinstance(window, timedelta) or not timedelta(0) < window <= _MAX_WINDOW * 7:
            raise InvalidInput("window", "must be a positive timedelta of at most a week")
        since = await self.store.now() - window
        return await self.store.failed_jobs(since, validation.page_limit(limit))

    async def get_top_users(self, *, limit: int = 10) -> list[UserLoad]:
        """For operators: the ``limit`` users with the most active jobs and the ``limit``
        with the most created today (so up to twice ``limit``), busiest first."""
        return await self.store.top_users(await self.store.now(), validation.page_limit(limit))

    async def find_job(self, job_id: str) -> Job:
        """For operators: any user's job by id; :class:`~jobdesk.errors.JobNotFound` if none.

        Never call it on a user's behalf: user operations are scoped to their user.
        """
        job_id = validation.job_id(job_id)
        job = await self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def subscribe(self, *, ready_only: bool = False) -> AbstractAsyncContextManager[Subscription]:
        """Live job changes, for ``async with desk.subscribe() as changes:``.

        On PostgreSQL every process's changes arrive (LISTEN/NOTIFY); on SQLite,
        this process's. Notifications speed things up; they are not a guarantee:
        after :data:`jobdesk.changes.RESYNC`, re-read. ``ready_only=True`` is for
        workers waiting for work: the changes of jobs that became pending are
        enough (others may be left out; on PostgreSQL they are, which spares a busy
        worker's process from reading every change of every job).
        """
        if not isinstance(ready_only, bool):
            raise InvalidInput("ready_only", "must be true or false")
        return self.store.subscribe(ready_only=ready_only)

    # -- tokens ---------------------------------------------------------------------------

    async def create_worker_token(
        self,
        name: str,
        *,
        types: str | Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        """A new worker token named ``name``, optionally limited to job types.

        The plaintext is returned once and never stored; keep it secret.
        """
        name = validation.token_name(name)
        allowed = validation.job_types(types, self.types)
        return await self._issue("worker", name, allowed, expires_at)

    async def revoke_worker_token(self, name: str) -> int:
        """Revoke every live token named ``name``; how many were revoked."""
        return await self.store.revoke_tokens("worker", validation.token_name(name))

    async def list_worker_tokens(self) -> list[WorkerTokenInfo]:
        """Every worker token, newest first, without secrets."""
        return [
            WorkerTokenInfo(r.subject, r.types, r.created_at, r.expires_at, r.revoked_at)
            for r in await self.store.list_tokens("worker")
        ]

    async def create_user_token(self, user_id: str, *, expires_at: datetime | None = None) -> str:
        """A bearer token for ``user_id`` (for the HTTP API); shown once, stored hashed."""
        return await self._issue(
            "user", validation.principal_id("user_id", user_id), None, expires_at
        )

    async def verify_user_token(self, token: str) -> str:
        """The user id a user token stands for; :class:`~jobdesk.errors.Unauthorized` otherwise."""
        return (await self._verify(token, "user")).subject

    async def revoke_user_tokens(self, user_id: str) -> int:
        """Revoke every token of ``user_id``; how many were revoked."""
        return await self.store.revoke_tokens("user", validation.principal_id("user_id", user_id))

    async def create_admin_token(self, name: str, *, expires_at: datetime | None = None) -> str:
        """A new admin token (``jda_...``, for the operator's dashboard) named ``name``.

        The plaintext is returned once and never stored; keep it secret.
        """
        name = validation.token_name(name)
        live = [r for r in await self.store.list_tokens("admin") if r.revoked_at is None]
        if any(record.subject == name for record in live):
            raise InvalidInput("name", f"a live admin token named {name!r} exists; revoke it first")
        return await self._issue("admin", name, None, expires_at)

    async def verify_admin_token(self, token: str) -> str:
        """The name of an admin token; :class:`~jobdesk.errors.Unauthorized` otherwise."""
        return (await self._verify(token, "admin")).subject

    async def revoke_admin_token(self, name: str) -> int:
        """Revoke every live admin token named ``name``; how many were revoked."""
        return await self.store.revoke_tokens("admin", validation.token_name(name))

    async def _issue(
        self,
        kind: tokens.TokenKind,
        subject: str,
        types: frozenset[str] | None,
        expires_at: datetime | None,
    ) -> str:
        now = await self.store.now()
        if expires_at is not None:
            expires_at = validation.aware_datetime("expires_at", expires_at)
            if expires_at <= now:
                raise InvalidInput("expires_at", "must be in the future")
        token, parsed = tokens.generate(kind)
        record = TokenRecord(
            parsed.key_id, kind, subject, parsed.secret_hash, now, types, expires_at
        )
        await self.store.insert_token(record)
        return token

    async def _verify(self, token: object, kind: tokens.TokenKind) -> TokenRecord:
        parsed = tokens.parse(token, kind)
        record = await self.store.get_token(kind, parsed.key_id)
        if not tokens.matches(parsed, None if record is None else record.secret_hash):
            raise Unauthorized(f"unknown {kind} token")
        assert record is not None  # matches() is False for a missing record
        if record.revoked_at is not None:
            raise Unauthorized(f"this {kind} token was revoked")
        if record.expires_at is not None and record.expires_at <= await self.store.now():
            raise Unauthorized(f"this {kind} token expired at {record.expires_at.isoformat()}")
        return record


class _Opening:
    """What :meth:`JobDesk.open` returns: await it, or use it with ``async with``."""

    def __init__(self, desk: JobDesk) -> None:
        self._desk = desk

    def __await__(self) -> Generator[Any, None, JobDesk]:
        return self._open().__await__()

    async def _open(self) -> JobDesk:
        await self._desk.start()
        return self._desk

    async def __aenter__(self) -> JobDesk:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._desk.close()

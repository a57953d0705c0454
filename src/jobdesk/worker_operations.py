"""WorkerOperations: what a worker does with the jobs it runs.

Verify a worker token, look at the queue, start or claim jobs, report progress
and heartbeats, complete (one, a batch, or a batch and the next claim in one
transaction), fail and release. Every operation but the first needs the
:class:`~jobdesk.models.Worker` that ``verify_worker_token`` returned, and names
the attempt it holds: a stale attempt is refused with
:class:`~jobdesk.errors.LeaseLost`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from functools import partial
from typing import Any

from jobdesk import lifecycle, tracing, validation
from jobdesk.desk_base import DeskBase
from jobdesk.errors import InvalidInput, JobdeskError, Unauthorized
from jobdesk.models import Completion, Job, JobStatus, JSONValue, ProgressReply, Worker
from jobdesk.store.common import completion_changes
from jobdesk.token_operations import verify_token

__all__ = ["WorkerOperations"]


class WorkerOperations(DeskBase):
    """The worker operations of :class:`jobdesk.JobDesk`, each for one verified worker."""

    async def verify_worker_token(self, token: str) -> Worker:
        """The :class:`Worker` a token stands for, or :class:`~jobdesk.errors.Unauthorized`.

        Verify once per connection or request: a token revoked later stops working
        at its next verification.
        """
        record = await verify_token(self.store, token, "worker")
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
        """The jobs a claim by this worker would start now, in its order (fair across
        users, within the running caps, pools and rates), without starting any."""
        worker = self._verified(worker)
        limit = validation.page_limit(limit)
        allowed = self._worker_types(worker, types)
        if allowed is not None and not allowed:
            return []
        return await self.store.ready_jobs(allowed, limit, self.limits)

    async def start_job(self, worker: Worker, job_id: str) -> Job:
        """Start one pending, due job for this worker: a new attempt under a new lease.

        :class:`~jobdesk.errors.InvalidTransition` if the job is no longer pending
        (another worker started it, say), or if its user is at their running cap or
        its type's pool is full or its rate spent: a start by id bypasses the fair
        order, never the limits.
        """
        worker = self._verified(worker)
        job_id = validation.job_id(job_id)
        change = partial(lifecycle.start, worker=worker, lease_seconds=self.limits.lease_seconds)
        return await self._update(job_id, change)

    async def claim_jobs(
        self, worker: Worker, *, types: str | Sequence[str] | None = None, limit: int = 1
    ) -> list[Job]:
        """Atomically start up to ``limit`` jobs, fairly across users (the fast path).

        The next start goes to the waiting user furthest behind their weighted share
        (:mod:`jobdesk.scheduling`); a user's own jobs go by priority, then age. Users
        at their running cap, and types whose pool is full or rate spent, wait.
        """
        worker = self._verified(worker)
        limit = validation.page_limit(limit)
        allowed = self._worker_types(worker, types)
        if allowed is not None and not allowed:
            return []
        with tracing.receive(worker.name) as span:
            claimed = await self.store.claim(
                worker, allowed, limit, self.limits.lease_seconds, self.limits
            )
            tracing.received(span, [(job.id, job.traceparent) for job in claimed])
            return claimed

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
        with tracing.receive(worker.name) as span:
            outcomes, claimed = await self.store.complete_and_claim(
                worker,
                checked,
                allowed,
                limit,
                lease_seconds=self.limits.lease_seconds,
                limits=self.limits,
            )
            tracing.received(span, [(job.id, job.traceparent) for job in claimed])
            return outcomes, claimed

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

    async def snooze_job(self, worker: Worker, job_id: str, delay: float, *, attempt: int) -> Job:
        """The worker cannot run the job now: ``pending`` again after ``delay`` seconds.

        For a handler that finds an outside resource busy ("not now", not a
        failure): the attempt is not spent and no error is recorded; the job waits
        as ``scheduled`` until then. ``delay`` is 0 to 30 days.
        """
        worker = self._verified(worker)
        job_id = validation.job_id(job_id)
        change = partial(
            lifecycle.snooze,
            worker=worker,
            attempt=validation.attempt(attempt),
            delay=validation.seconds("delay", delay, validation.MAX_SNOOZE_SECONDS),
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

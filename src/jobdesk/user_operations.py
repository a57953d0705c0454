"""UserOperations: what a user of the host application does with their own jobs.

Create (one or a batch), list, read, follow, cancel and retry jobs, and read or
set the user's limits. Every operation names the acting ``user_id`` and sees
only that user's jobs: another user's job is reported as one that does not
exist. Arguments are validated here, before anything reaches the store.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from datetime import datetime

from jobdesk import cursors, lifecycle, scheduling, tracing, validation
from jobdesk.desk_base import DeskBase
from jobdesk.errors import InvalidInput, JobNotFound
from jobdesk.ids import new_job_id
from jobdesk.models import (
    Job,
    JobEvent,
    JobPage,
    JobSpec,
    JobStatus,
    JSONValue,
    NewJob,
    UserLimits,
    UserUsage,
)

__all__ = ["UserOperations"]


class UserOperations(DeskBase):
    """The user operations of :class:`jobdesk.JobDesk`, each scoped to one ``user_id``."""

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
        :class:`~jobdesk.errors.RateLimited` when the user already holds their most
        pending jobs (``limit="waiting"``) or created their most today
        (``limit="daily"``). A user at their running cap is not refused: the job
        waits its turn. With ``idempotency_key``, a repeated call for the same user
        returns the first job and counts once.
        """
        with tracing.send(type if isinstance(type, str) else "?") as span:
            spec = self._new_job(
                validation.principal_id("user_id", user_id),
                type,
                input,
                project_id,
                priority=priority,
                run_at=run_at,
                max_attempts=max_attempts,
                idempotency_key=idempotency_key,
                traceparent=tracing.traceparent(span),
            )
            job, _ = await self.store.insert_job(spec, self.limits)
            tracing.message_id(span, job.id)
            return job

    async def create_jobs(self, user_id: str, jobs: Sequence[JobSpec]) -> list[Job]:
        """Store several ``pending`` jobs for ``user_id`` in one transaction: all or none.

        Each :class:`~jobdesk.JobSpec` holds what ``create_job`` takes for one job
        (no idempotency key: use ``create_job`` for that). The user's limits hold for
        the whole batch: if it does not fit (jobs created today, or pending jobs held),
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
        types = {item.type for item in jobs if isinstance(item, JobSpec)}
        label = next(iter(types)) if len(types) == 1 and isinstance(next(iter(types)), str) else "*"
        with tracing.send(label, count=len(jobs)) as span:
            parent = tracing.traceparent(span)
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
                            traceparent=parent,
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
        traceparent: str | None = None,
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
            traceparent=traceparent,
        )

    async def get_job_status(self, job_id: str, user_id: str) -> Job:
        """One of the user's jobs; :class:`~jobdesk.errors.JobNotFound` for any other id.

        A pending job says why it waits (``job.waiting``: scheduled, backoff, the
        user's running cap, the type's pool or rate, or its turn).
        """
        job = await self._own_job(job_id, user_id)
        if job.status is not JobStatus.PENDING:
            return job
        facts = await self.store.wait_facts(job, self.limits)
        return dataclasses.replace(job, waiting=scheduling.why_waiting(job, facts))

    async def _own_job(self, job_id: str, user_id: str) -> Job:
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
        job = await self._own_job(job_id, user_id)
        return await self.store.job_events(job.id)

    async def cancel_job(self, job_id: str, user_id: str) -> Job:
        """Cancel a pending or processing job at once; its place (waiting or running) is free.

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

        It counts against the waiting and the daily limits again, as a new job would
        (:class:`~jobdesk.errors.RateLimited`); its history keeps the earlier attempts.
        """
        job_id = validation.job_id(job_id)
        user_id = validation.principal_id("user_id", user_id)
        return await self._update(job_id, lifecycle.retry, user_id)

    async def get_user_usage(self, user_id: str) -> UserUsage:
        """The user's effective limits and how much of them is in use."""
        return await self.store.user_usage(validation.principal_id("user_id", user_id), self.limits)

    async def set_user_limits(
        self,
        user_id: str,
        *,
        max_running: int | None = None,
        max_waiting: int | None = None,
        max_daily: int | None = None,
        weight: float | None = None,
        max_active: int | None = None,
    ) -> None:
        """Override the default limits for one user (a paid plan, say).

        ``max_running``: their jobs processing at once (further jobs wait);
        ``max_waiting``: pending jobs they may hold; ``max_daily``: jobs created per
        UTC day; ``weight``: their share of the workers when several users wait
        (above 0, at most 1000; a user of weight 2 gets twice the starts of a user of
        weight 1). Every call sets all four: None restores a default.
        ``max_active`` is the deprecated name of ``max_running``.
        """
        user_id = validation.principal_id("user_id", user_id)
        if max_active is not None:
            warnings.warn(
                "set_user_limits(max_active=) is deprecated: use max_running (jobs past it "
                "now wait instead of being refused) and max_waiting",
                DeprecationWarning,
                stacklevel=2,
            )
            if max_running is None:
                max_running = validation.integer("max_active", max_active, 0, MAX_LIMIT)
        overrides = UserLimits(
            max_running=_optional_limit("max_running", max_running, MAX_LIMIT),
            max_waiting=_optional_limit("max_waiting", max_waiting, MAX_LIMIT),
            max_daily=_optional_limit("max_daily", max_daily, MAX_DAILY),
            weight=None if weight is None else validation.weight(weight),
        )
        await self.store.set_user_limits(user_id, overrides)


#: the largest running or waiting cap ``set_user_limits`` accepts
MAX_LIMIT = 1_000_000
#: the largest daily limit ``set_user_limits`` accepts
MAX_DAILY = 100_000_000


def _optional_limit(field: str, value: int | None, high: int) -> int | None:
    return None if value is None else validation.integer(field, value, 0, high)

"""The job, its statuses and the one table of allowed transitions.

Every status change anywhere in jobdesk goes through :func:`next_status`; both
stores obey this table and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from jobdesk.errors import InvalidTransition

JSONValue = Any
"""Anything :func:`json.dumps` accepts: dict, list, str, int, float, bool, None."""


class JobStatus(StrEnum):
    """Where a job is in its life."""

    #: stored, waiting for a worker (possibly until ``run_at``)
    PENDING = "pending"
    #: held by a worker under a lease
    PROCESSING = "processing"
    #: finished with a result; terminal
    COMPLETED = "completed"
    #: gave up: attempts spent or a non-retryable error; ``retry_job`` revives it
    FAILED = "failed"
    #: cancelled by its user; ``retry_job`` revives it
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        """Whether the job is pending or processing (not finished)."""
        return self in _ACTIVE

    @property
    def is_finished(self) -> bool:
        """Whether the job is in a terminal status (completed, failed, cancelled)."""
        return self not in _ACTIVE


_ACTIVE = frozenset({JobStatus.PENDING, JobStatus.PROCESSING})
ACTIVE_STATUSES: tuple[JobStatus, ...] = (JobStatus.PENDING, JobStatus.PROCESSING)


class Action(StrEnum):
    """What can happen to a job; the keys of the transition table."""

    #: a worker starts (or claims) a pending job
    START = "started"
    #: the worker reports success
    COMPLETE = "completed"
    #: the worker reports a failure that ends the job
    FAIL = "failed"
    #: back to the queue: retryable failure, expired lease or hand-back
    REQUEUE = "requeued"
    #: the user cancels
    CANCEL = "cancelled"
    #: the user asks for a failed or cancelled job to run again
    RETRY = "retried"


TRANSITIONS: Mapping[tuple[JobStatus, Action], JobStatus] = {
    (JobStatus.PENDING, Action.START): JobStatus.PROCESSING,
    (JobStatus.PENDING, Action.CANCEL): JobStatus.CANCELLED,
    (JobStatus.PROCESSING, Action.COMPLETE): JobStatus.COMPLETED,
    (JobStatus.PROCESSING, Action.FAIL): JobStatus.FAILED,
    (JobStatus.PROCESSING, Action.REQUEUE): JobStatus.PENDING,
    (JobStatus.PROCESSING, Action.CANCEL): JobStatus.CANCELLED,
    (JobStatus.FAILED, Action.RETRY): JobStatus.PENDING,
    (JobStatus.CANCELLED, Action.RETRY): JobStatus.PENDING,
}
"""The only allowed status changes: ``(from, action) -> to``."""


def next_status(job_id: str, status: JobStatus, action: Action) -> JobStatus:
    """The status ``action`` leads to from ``status``, or :class:`InvalidTransition`."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise InvalidTransition(job_id, status.value, action.value) from None


def sources(action: Action) -> tuple[JobStatus, ...]:
    """The statuses from which ``action`` is allowed."""
    return tuple(status for (status, act) in TRANSITIONS if act is action)


class WaitReason(StrEnum):
    """Why a pending job has not started yet."""

    #: its ``run_at`` is still ahead (``until``), as it was created or snoozed
    SCHEDULED = "scheduled"
    #: it failed and waits for its next attempt (``until``)
    BACKOFF = "backoff"
    #: its user already has ``limit`` jobs processing (``running`` of ``limit``)
    USER_RUNNING_LIMIT = "user_running_limit"
    #: its type's pool is full (``running`` of ``limit``, across every worker)
    TYPE_POOL = "type_pool"
    #: its type's rate allows the next start at ``until``
    TYPE_RATE = "type_rate"
    #: it can run: it waits for its turn among the users sharing the workers
    QUEUED = "queued"


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a pending job waits, and the figures that say for how long."""

    reason: WaitReason
    #: when the wait ends, where a time is known (scheduled, backoff, type_rate)
    until: datetime | None = None
    #: jobs processing now against ``limit`` (user_running_limit, type_pool)
    running: int | None = None
    limit: int | None = None
    #: the user's own runnable jobs that come before it (queued), where counted
    ahead: int | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One job, as stored. Times are timezone-aware UTC."""

    id: str
    user_id: str
    type: str
    status: JobStatus
    input: JSONValue
    created_at: datetime
    run_at: datetime
    updated_at: datetime
    project_id: str | None = None
    result: JSONValue = None
    #: ``{"message": ..., "code": ..., "details": ...}`` of the last failure, or None
    error: dict[str, JSONValue] | None = None
    progress: float = 0.0
    progress_message: str | None = None
    priority: int = 0
    #: how many times the job was started; never repeats, fences worker writes
    attempt: int = 0
    max_attempts: int = 3
    #: attempts that do not count against ``max_attempts``: those before the user's last
    #: ``retry_job`` (the budget restarts there) and those a worker handed back unfinished
    attempt_offset: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    idempotency_key: str | None = None
    #: why a pending job waits, computed when its owner asks (``get_job_status``); None
    #: for other statuses and wherever it was not asked for (lists, claims)
    waiting: Waiting | None = field(default=None, compare=False)
    #: the W3C traceparent of the span that created the job, when tracing was on
    #: (:mod:`jobdesk.tracing`); a worker's span for each attempt continues that trace
    traceparent: str | None = field(default=None, compare=False)

    @property
    def attempts_left(self) -> int:
        """Starts still allowed before a failure becomes final."""
        return max(0, self.max_attempts - (self.attempt - self.attempt_offset))

    @property
    def attempts_used(self) -> int:
        """Starts counted against the current budget: ``max_attempts - attempts_left``.

        This is the N of "attempt N of ``max_attempts``", the one way every face
        shows attempts: 0 before the first start, 1 while the first attempt runs.
        Starts before the user's last ``retry_job`` and starts a worker handed back
        unfinished are not counted (see ``attempt_offset``); ``attempt`` counts them.
        """
        return self.max_attempts - self.attempts_left


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job of a bulk create (``JobDesk.create_jobs``): ``create_job``'s arguments
    but the user, who is the same for the whole batch."""

    type: str
    input: JSONValue = None
    project_id: str | None = None
    priority: int = 0
    #: None means as soon as possible
    run_at: datetime | None = None
    #: None means the desk's ``Limits.max_attempts``
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated request for a job, before the store stamps its times."""

    id: str
    user_id: str
    type: str
    input: JSONValue
    #: ``input`` serialized once, by validation, for the store to write
    input_json: str
    max_attempts: int
    project_id: str | None = None
    priority: int = 0
    #: None means as soon as possible
    run_at: datetime | None = None
    idempotency_key: str | None = None
    #: the W3C traceparent of the span that created it (tracing on only)
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a user's jobs, newest first."""

    items: list[Job]
    #: pass to ``get_user_jobs(cursor=...)`` for the next page; None on the last page
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One status change in a job's history (its timeline and attempts)."""

    job_id: str
    at: datetime
    status: JobStatus
    attempt: int
    worker_id: str | None = None
    error: dict[str, JSONValue] | None = None


@dataclass(frozen=True, slots=True)
class Worker:
    """A verified worker: the name of its token and the job types it may touch.

    Only ``JobDesk.verify_worker_token`` makes one that worker operations accept:
    it carries a proof, keyed by the deployment's secret, that a valid token was
    shown. A ``Worker`` made by hand (or with other types) is refused.
    """

    name: str
    #: None means every type
    types: frozenset[str] | None = None
    proof: bytes = field(default=b"", repr=False, compare=False)

    def may_handle(self, job_type: str) -> bool:
        """Whether this worker's token allows jobs of ``job_type``."""
        return self.types is None or job_type in self.types


@dataclass(frozen=True, slots=True)
class Completion:
    """One finished job in a batch for ``complete_jobs``."""

    job_id: str
    #: the attempt the worker holds (``job.attempt`` from the claim)
    attempt: int
    result: JSONValue = None


@dataclass(frozen=True, slots=True)
class ProgressReply:
    """What a worker learns from a progress report or a heartbeat."""

    #: the user cancelled the job: stop working on it and report nothing more
    cancel_requested: bool
    lease_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueCount:
    """How many jobs of one type are in one status."""

    type: str
    status: JobStatus
    count: int


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A worker (by its token's name) that held a job within the stats window."""

    name: str
    #: jobs it is processing now
    processing: int
    #: its latest write to any of those jobs: claim, progress, heartbeat, end
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of the queue for operators: depth, workers seen, throughput."""

    #: the store's time of the snapshot
    at: datetime
    #: how far back "recent" looks, in seconds
    window_seconds: float
    #: every pending and processing job, and the jobs that finished within the window,
    #: by type and status
    counts: list[QueueCount]
    #: workers holding a job now or that finished one within the window
    workers: list[WorkerSeen]

    def finished(self, status: JobStatus) -> int:
        """How many jobs ended in ``status`` within the window."""
        return sum(count.count for count in self.counts if count.status is status)


@dataclass(frozen=True, slots=True)
class WorkerTokenInfo:
    """A stored worker token, without its secret."""

    name: str
    types: frozenset[str] | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserUsage:
    """A user's limits and how much of them is in use."""

    user_id: str
    #: jobs processing now, and the most that may be (further jobs wait)
    running: int
    max_running: int
    #: pending jobs now, and the most the user may hold (``create_job`` refuses past it)
    waiting: int
    max_waiting: int
    created_today: int
    max_daily: int
    #: next UTC midnight, when ``created_today`` starts again from zero
    resets_at: datetime
    #: the user's share of the workers when several users wait
    weight: float = 1.0

    @property
    def active(self) -> int:
        """Pending and processing jobs together."""
        return self.running + self.waiting


@dataclass(frozen=True, slots=True)
class UserLimits:
    """Per-user overrides of the default limits; None keeps the default."""

    max_running: int | None = None
    max_waiting: int | None = None
    max_daily: int | None = None
    weight: float | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token row as the store keeps it (hash only, never the secret)."""

    key_id: str
    kind: str
    subject: str
    secret_hash: bytes
    created_at: datetime
    types: frozenset[str] | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ThroughputMinute:
    """How many jobs were created, completed and failed in one minute (for operators)."""

    #: the start of the minute, UTC
    minute: datetime
    created: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class UserLoad:
    """One user's load now, for the operator's table of the busiest users."""

    user_id: str
    #: pending + processing jobs
    active: int
    #: jobs created this UTC day
    created_today: int

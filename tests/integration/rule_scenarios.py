"""The one table of scenarios that ``test_rule_twins`` runs through Python and each store.

A row is a user's state (per-user overrides, the stored daily count and the day it
was counted, how many other pending and processing jobs they hold), the default
:class:`Limits`, the types' pools and rates, the clock, the job's state (or a queue
of jobs of several users, for claims), an operation, and what must come of it: the
job's new status and fields, the jobs claimed in order, or the refusal with its
``limit``/``retry_after``/reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from jobdesk import JobStatus, Limits
from jobdesk.errors import InvalidTransition, JobdeskError, JobNotFound, LeaseLost, RateLimited
from jobdesk.lifecycle import LEASE_EXPIRED_ERROR
from jobdesk.models import UserLimits
from jobdesk.scheduling import Rate, TypeLimits

USER = "user-1"
OTHER_USER = "user-2"
#: seconds a snooze row puts the job off
SNOOZE_DELAY = 90.0
#: the pooled type (one at a time) and the paced type (one start a minute) of the rows
POOL = TypeLimits("gpu", max_running=1)
PACED = TypeLimits("mail", rate=Rate.parse("1/min"))
DEFAULTS = Limits()
LEASE = DEFAULTS.lease_seconds
NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: one second before UTC midnight: a refusal's retry_after is the 1 s left of the day
LAST_SECOND = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
#: a minute before UTC midnight
LAST_MINUTE = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
RESULT = {"answer": 42, "parts": [1, "x", None]}
FAILURE = {"message": "the model ran out of memory", "code": "oom"}


class Operation(StrEnum):
    """What a row does, each through the public ``JobDesk`` API."""

    CREATE = "create_job"
    CREATE_BATCH = "create_jobs"
    START = "start_job"
    CLAIM = "claim_jobs"
    #: complete_and_claim_jobs with nothing to complete: its claim half
    CYCLE_CLAIM = "complete_and_claim_jobs(claim)"
    COMPLETE = "complete_job"
    #: complete_and_claim_jobs with one completion and nothing to claim: its fast path
    CYCLE_COMPLETE = "complete_and_claim_jobs(complete)"
    FAIL = "fail_job(retryable)"
    FAIL_FINAL = "fail_job(not retryable)"
    RELEASE = "release_job"
    SNOOZE = "snooze_job"
    EXPIRE = "requeue_expired"
    CANCEL = "cancel_job"
    RETRY = "retry_job"


class JobState(StrEnum):
    """The job an operation acts on, made by the ordinary operations."""

    PENDING = "pending"
    #: pending, not due for an hour
    SCHEDULED = "scheduled"
    #: started by worker-1: attempt 1 under a running lease
    PROCESSING = "processing"
    #: started by worker-1 with max_attempts=1
    LAST_ATTEMPT = "last-attempt"
    #: started by worker-2
    PROCESSING_ELSEWHERE = "processing-elsewhere"
    #: started by worker-1, released, started again: attempt 2
    REATTEMPTED = "reattempted"
    CANCELLED_PENDING = "cancelled-pending"
    CANCELLED_PROCESSING = "cancelled-processing"
    COMPLETED = "completed"
    FAILED = "failed"


#: the status each state leaves the job in
STATUS_OF: Mapping[JobState, JobStatus] = {
    JobState.PENDING: JobStatus.PENDING,
    JobState.SCHEDULED: JobStatus.PENDING,
    JobState.PROCESSING: JobStatus.PROCESSING,
    JobState.LAST_ATTEMPT: JobStatus.PROCESSING,
    JobState.PROCESSING_ELSEWHERE: JobStatus.PROCESSING,
    JobState.REATTEMPTED: JobStatus.PROCESSING,
    JobState.CANCELLED_PENDING: JobStatus.CANCELLED,
    JobState.CANCELLED_PROCESSING: JobStatus.CANCELLED,
    JobState.COMPLETED: JobStatus.COMPLETED,
    JobState.FAILED: JobStatus.FAILED,
}


class Actor(StrEnum):
    """The worker that runs a worker operation."""

    #: the worker every state is started by; every type
    WORKER = "worker-1"
    #: another worker, every type
    OTHER = "worker-2"
    #: worker-1's name on a token re-issued for type "render" only (the job is "demo")
    WORKER_RENDER_ONLY = "worker-1 (render only)"
    #: a worker of its own whose token allows type "render" only
    RENDERER = "renderer"


@dataclass(frozen=True)
class UserState:
    """The acting user as the store holds them before the operation."""

    #: set with set_user_limits; None: the user never had limits set
    overrides: UserLimits | None = None
    #: the stored daily count...
    created: int = 0
    #: ...and how many UTC days before the clock's day it was counted
    counted_days_ago: int = 0
    #: the user's other pending jobs
    waiting: int = 0
    #: the user's other jobs a worker (worker-2) started...
    processing: int = 0
    #: ...of this type
    processing_type: str = "demo"

    @property
    def fresh(self) -> bool:
        """Whether the user has no stored row at all."""
        return (
            self.overrides is None and not self.created and not self.waiting and not self.processing
        )


@dataclass(frozen=True)
class Later:
    """A time ``seconds`` after the clock at the operation."""

    seconds: float = 0.0

    def at(self, now: datetime) -> datetime:
        """The time this stands for."""
        return now + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class Backoff:
    """A ``run_at`` within the jittered retry backoff after ``attempts_made`` attempts."""

    attempts_made: int

    def window(self, now: datetime, limits: Limits) -> tuple[datetime, datetime]:
        """The earliest and latest ``run_at`` the backoff allows."""
        doublings = self.attempts_made - 1
        nominal = min(
            limits.retry_backoff_max_seconds, limits.retry_backoff_seconds * 2.0**doublings
        )
        return now + timedelta(seconds=nominal / 2), now + timedelta(seconds=nominal)


@dataclass(frozen=True)
class Outcome:
    """The operation succeeds: the job's new status and fields (times relative to the clock)."""

    status: JobStatus
    fields: Mapping[str, object] = field(default_factory=dict)
    #: the user's daily count after the operation, when it matters
    created_today: int | None = None
    #: the user's pending jobs after the operation, when it matters
    waiting: int | None = None


@dataclass(frozen=True)
class Refusal:
    """The operation is refused with ``error``; nothing is written."""

    error: type[JobdeskError]
    limit: str | None = None
    allowed: int | None = None
    retry_after: int | None = None
    #: a part of a LeaseLost's reason, or of an InvalidTransition's message
    reason: str | None = None


@dataclass(frozen=True)
class Seed:
    """One job of a claim scenario's queue, created in table order (so ids rise)."""

    name: str
    type: str = "demo"
    priority: int = 0
    user: str = USER
    #: seconds after the clock that it becomes due
    due_in: float = 0.0
    #: "start" (by worker-2) or "cancel" after its creation
    then: str | None = None


@dataclass(frozen=True)
class Claimed:
    """The claim starts these seeds, in this order."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    """One row of the table."""

    name: str
    operation: Operation
    expect: Outcome | Refusal | Claimed
    job: JobState | None = None
    user: UserState = UserState()
    limits: Limits = DEFAULTS
    clock: datetime = NOON
    #: seconds the clock moves between setting up and the operation
    after: float = 0.0
    actor: Actor = Actor.WORKER
    #: the worker names the attempt before the job's current one
    stale_attempt: bool = False
    batch: int = 1
    queue: tuple[Seed, ...] = ()
    #: other users' overrides (a claim row's weights and caps)
    others: tuple[tuple[str, UserLimits], ...] = ()
    #: the types' pools and rates
    type_limits: tuple[TypeLimits, ...] = ()
    #: the type of the row's job
    job_type: str = "demo"
    #: the types a claim asks for (None: every type the worker may handle)
    types: tuple[str, ...] | None = None
    claim_limit: int = 10


def _started(attempt: int = 1, worker: str = "worker-1") -> dict[str, object]:
    return {
        "attempt": attempt,
        "worker_id": worker,
        "started_at": Later(),
        "lease_expires_at": Later(LEASE),
        "progress": 0.0,
        "progress_message": None,
        "cancel_requested": False,
        "error": None,
        "updated_at": Later(),
    }


def _limit_rows() -> list[Scenario]:
    #: the waiting limit as small defaults make it: rows need only a few jobs
    small = Limits(max_waiting_per_user=3)
    waiting = Refusal(RateLimited, limit="waiting", allowed=3)
    return [
        Scenario(
            "create/fresh-user",
            Operation.CREATE,
            Outcome(
                JobStatus.PENDING,
                {
                    "attempt": 0,
                    "attempt_offset": 0,
                    "created_at": Later(),
                    "run_at": Later(),
                    "worker_id": None,
                },
                created_today=1,
                waiting=1,
            ),
        ),
        Scenario(
            "create/daily-below-default",
            Operation.CREATE,
            Outcome(JobStatus.PENDING, created_today=1000),
            user=UserState(created=999),
        ),
        Scenario(
            "create/daily-at-default",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=1000, retry_after=12 * 3600),
            user=UserState(created=1000),
        ),
        Scenario(
            "create/daily-at-custom-default",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=3, retry_after=12 * 3600),
            user=UserState(created=3),
            limits=Limits(max_created_per_day=3),
        ),
        Scenario(
            "create/daily-override-lower",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=5, retry_after=12 * 3600),
            user=UserState(UserLimits(max_daily=5), created=5),
        ),
        Scenario(
            "create/daily-override-higher",
            Operation.CREATE,
            Outcome(JobStatus.PENDING, created_today=1001),
            user=UserState(UserLimits(max_daily=2000), created=1000),
        ),
        Scenario(
            "create/daily-override-zero",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=0, retry_after=12 * 3600),
            user=UserState(UserLimits(max_daily=0)),
        ),
        Scenario(
            "create/daily-falls-back-when-only-waiting-overridden",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=1000, retry_after=12 * 3600),
            user=UserState(UserLimits(max_waiting=50), created=1000),
        ),
        Scenario(
            "create/daily-falls-back-after-overrides-cleared",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=1000, retry_after=12 * 3600),
            user=UserState(UserLimits(), created=1000),
        ),
        Scenario(
            "create/daily-last-second-of-day",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=1000, retry_after=1),
            user=UserState(created=1000),
            clock=LAST_SECOND,
        ),
        Scenario(
            "create/daily-last-minute-of-day",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=1000, retry_after=60),
            user=UserState(created=1000),
            clock=LAST_MINUTE,
        ),
        Scenario(
            "create/daily-resets-at-midnight",
            Operation.CREATE,
            Outcome(JobStatus.PENDING, created_today=1),
            user=UserState(created=1000, counted_days_ago=1),
            clock=MIDNIGHT,
        ),
        Scenario(
            "create/daily-resets-after-days-away",
            Operation.CREATE,
            Outcome(JobStatus.PENDING, created_today=1),
            user=UserState(UserLimits(max_daily=5), created=5, counted_days_ago=30),
        ),
        Scenario(
            "create/waiting-below-custom-default",
            Operation.CREATE,
            Outcome(JobStatus.PENDING, waiting=3),
            user=UserState(waiting=2),
            limits=small,
        ),
        Scenario(
            "create/waiting-at-custom-default",
            Operation.CREATE,
            waiting,
            user=UserState(waiting=3),
            limits=small,
        ),
        Scenario(
            "create/processing-jobs-do-not-wait",
            Operation.CREATE,
            Outcome(JobStatus.PENDING, waiting=3),
            user=UserState(waiting=2, processing=5),
            limits=small,
        ),
        Scenario(
            "create/past-the-running-cap-the-job-waits",
            Operation.CREATE,
            Outcome(JobStatus.PENDING, waiting=1),
            user=UserState(UserLimits(max_running=2), processing=2),
        ),
        Scenario(
            "create/waiting-override-lower",
            Operation.CREATE,
            Refusal(RateLimited, limit="waiting", allowed=2),
            user=UserState(UserLimits(max_waiting=2), waiting=2),
        ),
        Scenario(
            "create/waiting-override-higher",
            Operation.CREATE,
            Outcome(JobStatus.PENDING, waiting=4),
            user=UserState(UserLimits(max_waiting=4), waiting=3),
            limits=small,
        ),
        Scenario(
            "create/waiting-override-zero",
            Operation.CREATE,
            Refusal(RateLimited, limit="waiting", allowed=0),
            user=UserState(UserLimits(max_waiting=0)),
        ),
        Scenario(
            "create/waiting-falls-back-when-only-daily-overridden",
            Operation.CREATE,
            waiting,
            user=UserState(UserLimits(max_daily=5000), waiting=3),
            limits=small,
        ),
        Scenario(
            "create/daily-judged-before-waiting",
            Operation.CREATE,
            Refusal(RateLimited, limit="daily", allowed=3, retry_after=12 * 3600),
            user=UserState(UserLimits(max_waiting=2, max_daily=3), created=3, waiting=2),
        ),
        Scenario(
            "create-batch/fits-the-day",
            Operation.CREATE_BATCH,
            Outcome(JobStatus.PENDING, created_today=1000, waiting=3),
            user=UserState(created=997),
            batch=3,
        ),
        Scenario(
            "create-batch/one-past-the-day",
            Operation.CREATE_BATCH,
            Refusal(RateLimited, limit="daily", allowed=1000, retry_after=12 * 3600),
            user=UserState(created=998),
            batch=3,
        ),
        Scenario(
            "create-batch/resets-at-midnight",
            Operation.CREATE_BATCH,
            Outcome(JobStatus.PENDING, created_today=3),
            user=UserState(created=1000, counted_days_ago=1),
            clock=MIDNIGHT,
            batch=3,
        ),
        Scenario(
            "create-batch/fits-the-waiting-limit",
            Operation.CREATE_BATCH,
            Outcome(JobStatus.PENDING, waiting=5),
            user=UserState(UserLimits(max_waiting=5), waiting=2),
            batch=3,
        ),
        Scenario(
            "create-batch/one-past-the-waiting-limit",
            Operation.CREATE_BATCH,
            Refusal(RateLimited, limit="waiting", allowed=5),
            user=UserState(UserLimits(max_waiting=5), waiting=3),
            batch=3,
        ),
    ]


def _claim_rows() -> list[Scenario]:
    claims = [
        Scenario(
            "priority-then-age",
            Operation.CLAIM,
            Claimed(("b", "d", "a", "c", "e")),
            queue=(
                Seed("a"),
                Seed("b", priority=5),
                Seed("c"),
                Seed("d", priority=5),
                Seed("e", priority=-1),
            ),
        ),
        Scenario(
            "up-to-the-limit",
            Operation.CLAIM,
            Claimed(("b", "a")),
            queue=(Seed("a"), Seed("b", priority=1), Seed("c"), Seed("d")),
            claim_limit=2,
        ),
        Scenario(
            "not-yet-due-waits",
            Operation.CLAIM,
            Claimed(("now", "also-now")),
            queue=(Seed("later", priority=9, due_in=60), Seed("now"), Seed("also-now")),
        ),
        Scenario(
            "due-once-the-clock-gets-there",
            Operation.CLAIM,
            Claimed(("later", "now")),
            queue=(Seed("later", priority=9, due_in=60), Seed("now")),
            after=60,
        ),
        Scenario(
            "only-pending-jobs",
            Operation.CLAIM,
            Claimed(("waiting",)),
            queue=(
                Seed("taken", priority=9, then="start"),
                Seed("dropped", priority=8, then="cancel"),
                Seed("waiting"),
            ),
        ),
        Scenario(
            "types-the-token-allows",
            Operation.CLAIM,
            Claimed(("render",)),
            queue=(Seed("demo", priority=9), Seed("render", type="render")),
            actor=Actor.RENDERER,
        ),
        Scenario(
            "types-asked-for",
            Operation.CLAIM,
            Claimed(("render", "mail")),
            queue=(
                Seed("demo", priority=9),
                Seed("render", type="render"),
                Seed("mail", type="mail"),
            ),
            types=("render", "mail"),
        ),
        Scenario(
            "types-asked-for-within-the-token",
            Operation.CLAIM,
            Claimed(()),
            queue=(Seed("demo", priority=9), Seed("render", type="render")),
            actor=Actor.RENDERER,
            types=("demo",),
        ),
        Scenario(
            "fair-across-users",
            Operation.CLAIM,
            Claimed(("a", "c", "b")),
            queue=(Seed("a", priority=9), Seed("b", priority=9), Seed("c", user=OTHER_USER)),
        ),
        Scenario(
            "priority-only-within-a-user",
            Operation.CLAIM,
            # user-2's priority 9 gets user-2's turn, not user-1's: priority orders
            # only a user's own jobs.
            Claimed(("own-urgent", "urgent", "first", "second")),
            queue=(
                Seed("first"),
                Seed("second"),
                Seed("urgent", priority=9, user=OTHER_USER),
                Seed("own-urgent", priority=5),
            ),
        ),
        Scenario(
            "weights-order",
            Operation.CLAIM,
            Claimed(("a1", "b1", "b2", "b3", "a2", "b4")),
            queue=(
                *(Seed(f"a{n}") for n in range(1, 5)),
                *(Seed(f"b{n}", user=OTHER_USER) for n in range(1, 5)),
            ),
            others=((OTHER_USER, UserLimits(weight=3.0)),),
            claim_limit=6,
        ),
        Scenario(
            "an-idle-user-comes-back-level-with-the-floor",
            Operation.CLAIM,
            # user-2 started three before user-1 had anything: user-1 arrives at
            # user-2's clock (3), not at 0 (which would take the next three starts).
            Claimed(("b1", "a4", "b2", "a5")),
            queue=(
                Seed("a1", user=OTHER_USER, then="start"),
                Seed("a2", user=OTHER_USER, then="start"),
                Seed("a3", user=OTHER_USER, then="start"),
                Seed("a4", user=OTHER_USER),
                Seed("a5", user=OTHER_USER),
                Seed("b1"),
                Seed("b2"),
                Seed("b3"),
            ),
            claim_limit=4,
        ),
        Scenario(
            "the-running-cap-passes-over-a-capped-user",
            Operation.CLAIM,
            Claimed(("c",)),
            queue=(Seed("a", then="start"), Seed("b", priority=9), Seed("c", user=OTHER_USER)),
            user=UserState(UserLimits(max_running=1)),
        ),
        Scenario(
            "the-running-cap-leaves-room-for-the-rest",
            Operation.CLAIM,
            Claimed(("b", "c")),
            queue=(Seed("a", then="start"), Seed("b"), Seed("c"), Seed("d")),
            user=UserState(UserLimits(max_running=3)),
        ),
        Scenario(
            "a-pool-starts-one-at-a-time",
            Operation.CLAIM,
            Claimed(("g1", "d")),
            queue=(Seed("g1", type="gpu"), Seed("g2", type="gpu"), Seed("d")),
            type_limits=(POOL,),
        ),
        Scenario(
            "a-full-pool-waits",
            Operation.CLAIM,
            Claimed(("d",)),
            queue=(Seed("g1", type="gpu", then="start"), Seed("g2", type="gpu"), Seed("d")),
            type_limits=(POOL,),
        ),
        Scenario(
            "a-rate-starts-one-per-interval",
            Operation.CLAIM,
            Claimed(("m1", "d")),
            queue=(Seed("m1", type="mail"), Seed("m2", type="mail"), Seed("d")),
            type_limits=(PACED,),
        ),
        Scenario(
            "a-spent-rate-waits",
            Operation.CLAIM,
            Claimed(()),
            queue=(Seed("m1", type="mail", then="start"), Seed("m2", type="mail")),
            type_limits=(PACED,),
            after=59,
        ),
        Scenario(
            "a-rate-opens-after-its-interval",
            Operation.CLAIM,
            Claimed(("m2",)),
            queue=(
                Seed("m1", type="mail", then="start"),
                Seed("m2", type="mail"),
                Seed("m3", type="mail"),
            ),
            type_limits=(PACED,),
            after=60,
        ),
    ]
    return [
        dataclasses.replace(row, name=f"{prefix}/{row.name}", operation=operation)
        for operation, prefix in (
            (Operation.CLAIM, "claim"),
            (Operation.CYCLE_CLAIM, "cycle-claim"),
        )
        for row in claims
    ]


def _start_rows() -> list[Scenario]:
    return [
        Scenario(
            "start/pending",
            Operation.START,
            Outcome(JobStatus.PROCESSING, _started()),
            job=JobState.PENDING,
        ),
        Scenario(
            "start/scheduled-not-due",
            Operation.START,
            Refusal(InvalidTransition),
            job=JobState.SCHEDULED,
        ),
        Scenario(
            "start/scheduled-once-due",
            Operation.START,
            Outcome(JobStatus.PROCESSING, _started()),
            job=JobState.SCHEDULED,
            after=3600,
        ),
        Scenario(
            "start/processing",
            Operation.START,
            Refusal(InvalidTransition),
            job=JobState.PROCESSING_ELSEWHERE,
        ),
        Scenario(
            "start/cancelled",
            Operation.START,
            Refusal(InvalidTransition),
            job=JobState.CANCELLED_PENDING,
        ),
        Scenario(
            "start/below-the-running-cap",
            Operation.START,
            Outcome(JobStatus.PROCESSING, _started(), waiting=0),
            job=JobState.PENDING,
            user=UserState(UserLimits(max_running=2), processing=1),
        ),
        Scenario(
            "start/refused-at-the-running-cap",
            Operation.START,
            Refusal(InvalidTransition, reason=f"{USER} already has 2 jobs running (max_running 2)"),
            job=JobState.PENDING,
            user=UserState(UserLimits(max_running=2), processing=2),
        ),
        Scenario(
            "start/refused-by-a-full-pool",
            Operation.START,
            Refusal(InvalidTransition, reason="the type's pool is full"),
            job=JobState.PENDING,
            job_type="gpu",
            user=UserState(processing=1, processing_type="gpu"),
            type_limits=(POOL,),
        ),
        Scenario(
            "start/refused-by-a-spent-rate",
            Operation.START,
            Refusal(InvalidTransition, reason="the type's rate allows the next start at"),
            job=JobState.PENDING,
            job_type="mail",
            user=UserState(processing=1, processing_type="mail"),
            type_limits=(PACED,),
            after=30,
        ),
        Scenario(
            "start/allowed-once-the-rate-has-room",
            Operation.START,
            Outcome(JobStatus.PROCESSING, _started()),
            job=JobState.PENDING,
            job_type="mail",
            user=UserState(processing=1, processing_type="mail"),
            type_limits=(PACED,),
            after=60,
        ),
        Scenario(
            "start/type-the-token-forbids",
            Operation.START,
            Refusal(JobNotFound),
            job=JobState.PENDING,
            actor=Actor.RENDERER,
        ),
    ]


def _completion_rows() -> list[Scenario]:
    done = Outcome(
        JobStatus.COMPLETED,
        {
            "result": RESULT,
            "error": None,
            "progress": 100.0,
            "lease_expires_at": None,
            "finished_at": Later(),
            "updated_at": Later(),
            "worker_id": "worker-1",
            "attempt": 1,
        },
    )
    rows: list[Scenario] = []
    for operation, prefix in (
        (Operation.COMPLETE, "complete"),
        (Operation.CYCLE_COMPLETE, "cycle-complete"),
    ):
        rows += [
            Scenario(f"{prefix}/held", operation, done, job=JobState.PROCESSING),
            Scenario(
                f"{prefix}/lease-about-to-end",
                operation,
                done,
                job=JobState.PROCESSING,
                after=LEASE - 1,
            ),
            Scenario(
                f"{prefix}/another-worker-holds-it",
                operation,
                Refusal(LeaseLost, reason="not held by this worker"),
                job=JobState.PROCESSING_ELSEWHERE,
            ),
            Scenario(
                f"{prefix}/stale-attempt",
                operation,
                Refusal(LeaseLost, reason="attempt 1 is not the job's current attempt 2"),
                job=JobState.REATTEMPTED,
                stale_attempt=True,
            ),
            Scenario(
                f"{prefix}/cancelled",
                operation,
                Refusal(LeaseLost, reason="was cancelled"),
                job=JobState.CANCELLED_PROCESSING,
            ),
            Scenario(
                f"{prefix}/already-completed",
                operation,
                Refusal(LeaseLost, reason="the job is completed"),
                job=JobState.COMPLETED,
            ),
            Scenario(
                f"{prefix}/lease-ends-now",
                operation,
                Refusal(LeaseLost, reason="the lease expired"),
                job=JobState.PROCESSING,
                after=LEASE,
            ),
            Scenario(
                f"{prefix}/lease-expired",
                operation,
                Refusal(LeaseLost, reason="the lease expired"),
                job=JobState.PROCESSING,
                after=LEASE + 1,
            ),
            Scenario(
                f"{prefix}/type-the-token-no-longer-allows",
                operation,
                Refusal(JobNotFound),
                job=JobState.PROCESSING,
                actor=Actor.WORKER_RENDER_ONLY,
            ),
        ]
    return rows


def _failure_rows() -> list[Scenario]:
    requeued = {
        "error": FAILURE,
        "run_at": Backoff(1),
        "worker_id": None,
        "lease_expires_at": None,
        "attempt": 1,
        "finished_at": None,
    }
    expired = {**requeued, "error": LEASE_EXPIRED_ERROR}
    return [
        Scenario(
            "fail/retryable-with-attempts-left",
            Operation.FAIL,
            Outcome(JobStatus.PENDING, requeued),
            job=JobState.PROCESSING,
        ),
        Scenario(
            "fail/retryable-on-the-last-attempt",
            Operation.FAIL,
            Outcome(
                JobStatus.FAILED,
                {"error": FAILURE, "finished_at": Later(), "lease_expires_at": None},
            ),
            job=JobState.LAST_ATTEMPT,
        ),
        Scenario(
            "fail/not-retryable",
            Operation.FAIL_FINAL,
            Outcome(
                JobStatus.FAILED,
                {"error": FAILURE, "finished_at": Later(), "lease_expires_at": None},
            ),
            job=JobState.PROCESSING,
        ),
        Scenario(
            "fail/lease-expired",
            Operation.FAIL,
            Refusal(LeaseLost, reason="the lease expired"),
            job=JobState.PROCESSING,
            after=LEASE + 1,
        ),
        Scenario(
            "fail/another-worker-holds-it",
            Operation.FAIL_FINAL,
            Refusal(LeaseLost, reason="not held by this worker"),
            job=JobState.PROCESSING_ELSEWHERE,
        ),
        Scenario(
            "release/held",
            Operation.RELEASE,
            Outcome(
                JobStatus.PENDING,
                {
                    "attempt": 1,
                    "attempt_offset": 1,
                    "run_at": Later(),
                    "worker_id": None,
                    "lease_expires_at": None,
                },
            ),
            job=JobState.PROCESSING,
        ),
        Scenario(
            "snooze/held",
            Operation.SNOOZE,
            Outcome(
                JobStatus.PENDING,
                {
                    "attempt": 1,
                    "attempt_offset": 1,
                    "run_at": Later(SNOOZE_DELAY),
                    "worker_id": None,
                    "lease_expires_at": None,
                    "error": None,
                },
                waiting=1,
            ),
            job=JobState.PROCESSING,
        ),
        Scenario(
            "snooze/stale-attempt",
            Operation.SNOOZE,
            Refusal(LeaseLost, reason="attempt 1 is not the job's current attempt 2"),
            job=JobState.REATTEMPTED,
            stale_attempt=True,
        ),
        Scenario(
            "snooze/another-worker-holds-it",
            Operation.SNOOZE,
            Refusal(LeaseLost, reason="not held by this worker"),
            job=JobState.PROCESSING_ELSEWHERE,
        ),
        Scenario(
            "release/stale-attempt",
            Operation.RELEASE,
            Refusal(LeaseLost, reason="attempt 1 is not the job's current attempt 2"),
            job=JobState.REATTEMPTED,
            stale_attempt=True,
        ),
        Scenario(
            "expire/lease-ended-a-second-ago",
            Operation.EXPIRE,
            Outcome(JobStatus.PENDING, expired),
            job=JobState.PROCESSING,
            after=LEASE + 1,
        ),
        Scenario(
            "expire/lease-ends-now",
            Operation.EXPIRE,
            Outcome(JobStatus.PENDING, expired),
            job=JobState.PROCESSING,
            after=LEASE,
        ),
        Scenario(
            "expire/lease-still-running",
            Operation.EXPIRE,
            Outcome(JobStatus.PROCESSING, {"lease_expires_at": Later(1)}),
            job=JobState.PROCESSING,
            after=LEASE - 1,
        ),
        Scenario(
            "expire/last-attempt-fails",
            Operation.EXPIRE,
            Outcome(JobStatus.FAILED, {"error": LEASE_EXPIRED_ERROR, "finished_at": Later()}),
            job=JobState.LAST_ATTEMPT,
            after=LEASE + 1,
        ),
        Scenario(
            "expire/a-released-attempt-is-not-counted",
            Operation.EXPIRE,
            Outcome(JobStatus.PENDING, {**expired, "attempt": 2, "run_at": Backoff(1)}),
            job=JobState.REATTEMPTED,
            after=LEASE + 1,
        ),
        Scenario(
            "expire/pending-untouched",
            Operation.EXPIRE,
            Outcome(JobStatus.PENDING),
            job=JobState.PENDING,
            after=LEASE + 1,
        ),
    ]


def _user_rows() -> list[Scenario]:
    fresh = {
        "attempt_offset": 1,
        "run_at": Later(),
        "finished_at": None,
        "error": None,
        "result": None,
        "worker_id": None,
        "cancel_requested": False,
        "progress": 0.0,
    }
    return [
        Scenario(
            "cancel/pending",
            Operation.CANCEL,
            Outcome(
                JobStatus.CANCELLED,
                {"cancel_requested": False, "finished_at": Later()},
                waiting=0,
            ),
            job=JobState.PENDING,
        ),
        Scenario(
            "cancel/processing",
            Operation.CANCEL,
            Outcome(
                JobStatus.CANCELLED,
                {
                    "cancel_requested": True,
                    "lease_expires_at": None,
                    "finished_at": Later(),
                    "worker_id": "worker-1",
                },
            ),
            job=JobState.PROCESSING,
        ),
        Scenario(
            "cancel/cancelled-again",
            Operation.CANCEL,
            Outcome(JobStatus.CANCELLED, {"updated_at": Later(-10)}),
            job=JobState.CANCELLED_PENDING,
            after=10,
        ),
        Scenario(
            "cancel/completed", Operation.CANCEL, Refusal(InvalidTransition), job=JobState.COMPLETED
        ),
        Scenario(
            "cancel/failed", Operation.CANCEL, Refusal(InvalidTransition), job=JobState.FAILED
        ),
        Scenario(
            "retry/failed", Operation.RETRY, Outcome(JobStatus.PENDING, fresh), job=JobState.FAILED
        ),
        Scenario(
            "retry/cancelled-while-pending",
            Operation.RETRY,
            Outcome(JobStatus.PENDING, {**fresh, "attempt_offset": 0}),
            job=JobState.CANCELLED_PENDING,
        ),
        Scenario(
            "retry/cancelled-while-processing",
            Operation.RETRY,
            Outcome(JobStatus.PENDING, fresh),
            job=JobState.CANCELLED_PROCESSING,
        ),
        Scenario(
            "retry/counts-toward-the-day-and-the-waiting",
            Operation.RETRY,
            Outcome(JobStatus.PENDING, fresh, created_today=1000, waiting=3),
            job=JobState.FAILED,
            user=UserState(created=999, waiting=2),
            limits=Limits(max_waiting_per_user=3),
        ),
        Scenario(
            "retry/refused-by-the-daily-limit",
            Operation.RETRY,
            Refusal(RateLimited, limit="daily", allowed=1000, retry_after=12 * 3600),
            job=JobState.FAILED,
            user=UserState(created=1000),
        ),
        Scenario(
            "retry/refused-by-the-waiting-limit",
            Operation.RETRY,
            Refusal(RateLimited, limit="waiting", allowed=3),
            job=JobState.FAILED,
            user=UserState(waiting=3),
            limits=Limits(max_waiting_per_user=3),
        ),
        Scenario(
            "retry/processing-jobs-do-not-wait",
            Operation.RETRY,
            Outcome(JobStatus.PENDING, fresh, waiting=3),
            job=JobState.FAILED,
            user=UserState(waiting=2, processing=6),
            limits=Limits(max_waiting_per_user=3),
        ),
        Scenario(
            "retry/refused-by-a-waiting-override",
            Operation.RETRY,
            Refusal(RateLimited, limit="waiting", allowed=1),
            job=JobState.FAILED,
            user=UserState(UserLimits(max_waiting=1), waiting=1),
        ),
        Scenario(
            "retry/allowed-by-a-waiting-override",
            Operation.RETRY,
            Outcome(JobStatus.PENDING, fresh, waiting=4),
            job=JobState.FAILED,
            user=UserState(UserLimits(max_waiting=4), waiting=3),
            limits=Limits(max_waiting_per_user=3),
        ),
        Scenario(
            "retry/pending", Operation.RETRY, Refusal(InvalidTransition), job=JobState.PENDING
        ),
        Scenario(
            "retry/completed", Operation.RETRY, Refusal(InvalidTransition), job=JobState.COMPLETED
        ),
    ]


SCENARIOS: tuple[Scenario, ...] = (
    *_limit_rows(),
    *_claim_rows(),
    *_start_rows(),
    *_completion_rows(),
    *_failure_rows(),
    *_user_rows(),
)

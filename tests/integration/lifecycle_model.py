"""The simple Python model that ``test_lifecycle_model`` holds the desk to.

What the model expects of each job, the leases handed to workers, the small limits
the state machine runs under, and the scheduler's state: each user's clock (the
arrival rule and ``1 / weight`` per start, kept here rather than read from the
store) and each type's gate. The claim order itself is the pure rule,
:func:`jobdesk.scheduling.candidates` then :func:`jobdesk.scheduling.plan`, run
over the model's state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jobdesk import Job, JobStatus, Limits, scheduling
from jobdesk.scheduling import QueuedUser, Rate, TypeGate, TypeLimits

LIMITS = Limits(
    lease_seconds=60,
    max_attempts=2,
    retry_backoff_seconds=10,
    retry_backoff_max_seconds=40,
)
MAX_DAILY = {"alice": 6, "bob": 1000}  # alice meets her daily limit too
USERS = tuple(MAX_DAILY)
#: each user's running cap: alice's 1 is met often
MAX_RUNNING = {"alice": 1, "bob": 2}
#: each user's waiting limit: met often, by creates and retries
MAX_WAITING = {"alice": 3, "bob": 3}
#: alice's starts move her clock half as far: she gets two for each of bob's
WEIGHT = {"alice": 2.0, "bob": 1.0}
#: the job types: one unlimited, one with a pool of one, one paced to a start a minute
TYPE_LIMITS = {
    "gpu": TypeLimits("gpu", max_running=1),
    "mail": TypeLimits("mail", rate=Rate.parse("1/min")),
}
TYPES = ("demo", *TYPE_LIMITS)
WORKERS = ("worker-a", "worker-b")
START = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)  # UTC midnight is a few steps away
ACTIVE = (JobStatus.PENDING, JobStatus.PROCESSING)
TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass
class ModelJob:
    """What the model expects of one job."""

    id: str
    user_id: str
    priority: int
    max_attempts: int
    run_at: datetime
    #: the job as created: its id, type and priority, for the scheduling rule
    created: Job
    status: JobStatus = JobStatus.PENDING
    attempt: int = 0
    attempt_offset: int = 0
    worker: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False

    @property
    def attempts_left(self) -> int:
        return self.max_attempts - (self.attempt - self.attempt_offset)

    @property
    def type(self) -> str:
        return self.created.type

    def as_pending(self) -> Job:
        """The job as the scheduling rule sees it while it waits."""
        return dataclasses.replace(self.created, run_at=self.run_at)


@dataclass(frozen=True)
class Lease:
    """What a worker was handed by a start or claim: the job under one attempt."""

    job_id: str
    worker: str
    attempt: int


def nominal_backoff(attempts_made: int) -> float:
    """The delay before the next attempt, before jitter takes up to half of it away."""
    doubled: float = LIMITS.retry_backoff_seconds * 2.0 ** (attempts_made - 1)
    return min(LIMITS.retry_backoff_max_seconds, doubled)


@dataclass
class Model:
    """Every job the desk should hold, how many each user created on each UTC day, each
    user's clock and each rated type's next start."""

    jobs: dict[str, ModelJob] = field(default_factory=dict)
    created: dict[tuple[str, str], int] = field(default_factory=dict)
    vtime: dict[str, float] = field(default_factory=lambda: dict.fromkeys(USERS, 0.0))
    next_start_at: dict[str, datetime | None] = field(default_factory=dict)

    def count(self, user_id: str, status: JobStatus) -> int:
        return sum(job.user_id == user_id and job.status is status for job in self.jobs.values())

    def waiting(self, user_id: str) -> int:
        return self.count(user_id, JobStatus.PENDING)

    def running(self, user_id: str) -> int:
        return self.count(user_id, JobStatus.PROCESSING)

    def arrive(self, user_id: str) -> None:
        """One of the user's jobs is about to become pending: the arrival rule, if they
        had nothing waiting."""
        if self.waiting(user_id):
            return
        floors = [self.vtime[u] for u in USERS if u != user_id and self.waiting(u)]
        floor = min(floors) if floors else None
        self.vtime[user_id] = scheduling.vtime_on_arrival(self.vtime[user_id], floor)

    def gates(self) -> dict[str, TypeGate]:
        """Each limited type's gate now: its pool's running jobs and its rate's next start."""
        return {
            name: TypeGate(
                limits,
                running=sum(
                    job.type == name and job.status is JobStatus.PROCESSING
                    for job in self.jobs.values()
                ),
                next_start_at=self.next_start_at.get(name),
            )
            for name, limits in TYPE_LIMITS.items()
        }

    def plan(
        self, now: datetime, limit: int
    ) -> tuple[list[ModelJob], list[QueuedUser], dict[str, TypeGate]]:
        """What a claim of ``limit`` starts now, by the pure rule over the model's state;
        with the users and gates as the plan left them (clocks, rates)."""
        walk = [
            QueuedUser(
                user_id,
                self.vtime[user_id],
                WEIGHT[user_id],
                self.running(user_id),
                MAX_RUNNING[user_id],
                sorted(
                    (
                        job.as_pending()
                        for job in self.jobs.values()
                        if job.user_id == user_id and job.status is JobStatus.PENDING
                    ),
                    key=scheduling.user_order_key,
                ),
            )
            for user_id in USERS
            if self.waiting(user_id)
        ]
        walk.sort(key=lambda user: (user.vtime, user.user_id))
        gates = self.gates()
        chosen = scheduling.candidates(walk, limit=limit, now=now, gates=gates)
        planned = scheduling.plan(chosen, limit=limit, now=now, gates=gates)
        return [self.jobs[job.id] for job in planned], chosen, gates

    def started(self, job: ModelJob, now: datetime) -> None:
        """What a start does to the user's clock and the type's rate (the job's own fields
        are the caller's)."""
        self.vtime[job.user_id] = scheduling.vtime_after_start(
            self.vtime[job.user_id], WEIGHT[job.user_id]
        )
        limits = TYPE_LIMITS.get(job.type)
        if limits is not None and limits.rate is not None:
            self.next_start_at[job.type] = limits.rate.next_start_after(
                self.next_start_at.get(job.type), now
            )

    def why_not_startable(self, job: ModelJob, now: datetime) -> str | None:
        """Why ``start_job`` must refuse this job now, or None."""
        if job.status is not JobStatus.PENDING or job.run_at > now:
            return "not pending and due"
        if self.running(job.user_id) >= MAX_RUNNING[job.user_id]:
            return "running cap"
        gate = self.gates().get(job.type)
        if gate is not None and not gate.open(now):
            return "type gate"
        return None

    def holds(self, lease: Lease, now: datetime) -> bool:
        """Whether ``lease`` is the job's current, unexpired lease: its writes must be honoured."""
        job = self.jobs[lease.job_id]
        return (
            job.status is JobStatus.PROCESSING
            and (job.worker, job.attempt) == (lease.worker, lease.attempt)
            and job.lease_expires_at is not None
            and job.lease_expires_at > now
        )

    def expired(self, now: datetime) -> list[ModelJob]:
        """Processing jobs whose lease has run out: what ``requeue_expired`` must move."""
        return [
            job
            for job in self.jobs.values()
            if job.status is JobStatus.PROCESSING
            and job.lease_expires_at is not None
            and job.lease_expires_at <= now
        ]

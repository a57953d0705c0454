"""The simple Python model that ``test_lifecycle_model`` holds the desk to.

What the model expects of each job, the leases handed to workers, and the small
limits the state machine runs under.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from jobdesk import JobStatus, Limits

LIMITS = Limits(
    lease_seconds=60,
    max_attempts=2,
    retry_backoff_seconds=10,
    retry_backoff_max_seconds=40,
)
MAX_ACTIVE = 3
MAX_DAILY = {"alice": 4, "bob": 1000}  # alice meets her daily limit too
USERS = tuple(MAX_DAILY)
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
    status: JobStatus = JobStatus.PENDING
    attempt: int = 0
    attempt_offset: int = 0
    worker: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False

    @property
    def attempts_left(self) -> int:
        return self.max_attempts - (self.attempt - self.attempt_offset)


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
    """Every job the desk should hold, and how many each user created on each UTC day."""

    jobs: dict[str, ModelJob] = field(default_factory=dict)
    created: dict[tuple[str, str], int] = field(default_factory=dict)

    def active(self, user_id: str) -> int:
        return sum(job.user_id == user_id and job.status in ACTIVE for job in self.jobs.values())

    def ready(self, now: datetime) -> list[ModelJob]:
        due = [j for j in self.jobs.values() if j.status is JobStatus.PENDING and j.run_at <= now]
        return sorted(due, key=lambda job: (-job.priority, job.id))

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

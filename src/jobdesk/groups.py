"""Groups: many jobs a user sees as one thing, with one status and one progress.

A group is made at once with its jobs (``JobDesk.create_group``: all or none,
admitted as one batch). Its status and progress are not stored: they are derived
from its jobs' statuses and progress by the one rule here (:func:`summarize`),
which every face and both stores use. :class:`GroupTally` keeps the same figures
up to date change by change, for a live stream.

The rule::

    no job active (pending or processing):
        every job completed              -> completed
        every job cancelled, or the group was cancelled  -> cancelled
        no job completed                 -> failed
        otherwise                        -> partially_failed
    some job active:
        every job pending and none finished -> pending
        otherwise                           -> running

    progress = mean of the jobs' progress, a finished job counting as 100
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from jobdesk.models import JobStatus, JSONValue

__all__ = [
    "MAX_GROUP_JOBS",
    "FanIn",
    "Group",
    "GroupCounts",
    "GroupPage",
    "GroupStatus",
    "GroupTally",
    "NewGroup",
    "fan_in_key",
    "is_finished",
    "summarize",
]

#: the most jobs one group may hold
MAX_GROUP_JOBS = 10_000


class GroupStatus(StrEnum):
    """Where a group is, derived from its jobs by :func:`summarize`."""

    #: every job is pending: nothing has started yet
    PENDING = "pending"
    #: some job is active, and some job has started or finished
    RUNNING = "running"
    #: every job completed
    COMPLETED = "completed"
    #: every job finished, some completed and some did not (failed or cancelled)
    PARTIALLY_FAILED = "partially_failed"
    #: every job finished and none completed (and the group was not cancelled)
    FAILED = "failed"
    #: every job cancelled, or the group cancelled and no job active
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """Whether no job of the group is active (a terminal group status)."""
        return self not in (GroupStatus.PENDING, GroupStatus.RUNNING)


GroupCounts = Mapping[JobStatus, int]
"""How many of a group's jobs are in each status (missing statuses count 0)."""


def is_finished(counts: GroupCounts) -> bool:
    """Whether no job of the group is pending or processing (the fan-in moment)."""
    return not any(counts.get(status, 0) for status in JobStatus if status.is_active)


def summarize(
    counts: GroupCounts, active_progress: float, *, cancelled: bool = False
) -> tuple[GroupStatus, float]:
    """The group's status and combined progress (0-100) from its jobs.

    ``counts``: jobs per status; ``active_progress``: the sum of the progress of its
    pending and processing jobs (finished jobs count as 100 each); ``cancelled``:
    whether ``cancel_group`` was the last word on the group (``retry_group`` clears it).
    """
    total = sum(counts.values())
    finished = sum(n for status, n in counts.items() if status.is_finished)
    progress = 0.0 if total == 0 else min(100.0, (active_progress + 100.0 * finished) / total)
    completed = counts.get(JobStatus.COMPLETED, 0)
    if finished == total:
        if completed == total and total > 0:
            return GroupStatus.COMPLETED, progress
        if cancelled or counts.get(JobStatus.CANCELLED, 0) == total:
            return GroupStatus.CANCELLED, progress
        if completed == 0:
            return GroupStatus.FAILED, progress
        return GroupStatus.PARTIALLY_FAILED, progress
    if counts.get(JobStatus.PENDING, 0) == total:
        return GroupStatus.PENDING, progress
    return GroupStatus.RUNNING, progress


@dataclass(frozen=True, slots=True)
class FanIn:
    """The job to create when every job of a group has finished (``on_complete``).

    Its input is ``{"group_id": ..., "input": <input>, "jobs": [{"id", "status",
    "result"}, ...]}`` (the group's jobs in order; without their results, and with
    ``"results_omitted": true``, when they would not fit the input size limit: then
    read them with ``get_group_jobs``).
    """

    type: str
    input: JSONValue = None


def fan_in_key(group_id: str) -> str:
    """The idempotency key of a group's fan-in job: it is created once, however many
    processes notice at once that the group finished."""
    return f"group-fan-in:{group_id}"


@dataclass(frozen=True, slots=True)
class NewGroup:
    """A validated request for a group, before the store stamps its time."""

    id: str
    user_id: str
    project_id: str | None = None
    name: str | None = None
    on_complete: FanIn | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """A group of a user's jobs, with its derived status and progress."""

    id: str
    user_id: str
    created_at: datetime
    #: how many jobs it holds
    size: int
    #: its jobs per status (every status present, zeros included)
    counts: Mapping[JobStatus, int]
    status: GroupStatus
    #: the mean of its jobs' progress, finished jobs as 100
    progress: float
    project_id: str | None = None
    name: str | None = None
    on_complete: FanIn | None = None
    #: the fan-in job, once made
    on_complete_job_id: str | None = None
    #: when ``cancel_group`` was last called (cleared by ``retry_group``)
    cancelled_at: datetime | None = None

    @classmethod
    def of(
        cls,
        new: NewGroup,
        *,
        created_at: datetime,
        counts: GroupCounts,
        active_progress: float,
        on_complete_job_id: str | None = None,
        cancelled_at: datetime | None = None,
    ) -> Group:
        """The group as stored, with what :func:`summarize` makes of its jobs."""
        full = {status: int(counts.get(status, 0)) for status in JobStatus}
        status, progress = summarize(full, active_progress, cancelled=cancelled_at is not None)
        return cls(
            id=new.id,
            user_id=new.user_id,
            project_id=new.project_id,
            name=new.name,
            on_complete=new.on_complete,
            created_at=created_at,
            size=sum(full.values()),
            counts=full,
            status=status,
            progress=round(progress, 2),
            on_complete_job_id=on_complete_job_id,
            cancelled_at=cancelled_at,
        )


@dataclass(frozen=True, slots=True)
class GroupPage:
    """One page of a user's groups, newest first."""

    items: list[Group]
    #: pass to ``get_user_groups(cursor=...)`` for the next page; None on the last page
    next_cursor: str | None = None


class GroupTally:
    """A group's figures kept up to date one job change at a time (for live streams).

    Start it from the group's jobs (``(job_id, status, progress)``), then :meth:`apply`
    each change; :meth:`summary` is what :func:`summarize` says of the figures now.
    A change of a job that is not the group's is ignored. Each change costs O(1).
    """

    def __init__(
        self, jobs: Iterable[tuple[str, JobStatus, float]], *, cancelled: bool = False
    ) -> None:
        self.cancelled = cancelled
        self._jobs: dict[str, tuple[JobStatus, float]] = {}
        self._counts = dict.fromkeys(JobStatus, 0)
        self._active_progress = 0.0
        for job_id, status, progress in jobs:
            self._jobs[job_id] = (status, progress)
            self._add(status, progress, 1)

    def _add(self, status: JobStatus, progress: float, sign: int) -> None:
        self._counts[status] += sign
        if status.is_active:
            self._active_progress += sign * progress

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def apply(self, job_id: str, status: JobStatus, progress: float) -> bool:
        """Record a job's new state; whether it was the group's and anything changed."""
        before = self._jobs.get(job_id)
        if before is None or before == (status, progress):
            return False
        self._add(*before, -1)
        self._jobs[job_id] = (status, progress)
        self._add(status, progress, 1)
        return True

    def summary(self) -> tuple[GroupStatus, float, dict[JobStatus, int]]:
        """The group's status, progress and counts now."""
        counts = dict(self._counts)
        status, progress = summarize(
            counts, max(0.0, self._active_progress), cancelled=self.cancelled
        )
        return status, round(progress, 2), counts

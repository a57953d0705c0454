"""jobdesk: user-owned background jobs for web applications.

Open a :class:`JobDesk` on SQLite (the default) or PostgreSQL, create jobs for
your users within their limits, and let workers claim, report on and finish
them. ``jobdesk.sync`` offers the same operations to synchronous code.
"""

from jobdesk.desk import JobDesk
from jobdesk.groups import FanIn, Group, GroupPage, GroupStatus
from jobdesk.limits import Limits
from jobdesk.models import (
    Completion,
    Job,
    JobEvent,
    JobPage,
    JobSpec,
    JobStatus,
    ProgressReply,
    QueueCount,
    QueueStats,
    ThroughputMinute,
    UserLoad,
    UserUsage,
    Waiting,
    WaitReason,
    Worker,
    WorkerSeen,
    WorkerTokenInfo,
)
from jobdesk.retention import RetentionPolicy, RetentionReport, RetentionState
from jobdesk.schedules import Missed, Schedule
from jobdesk.scheduling import Rate, TypeLimits

__all__ = [
    "Completion",
    "FanIn",
    "Group",
    "GroupPage",
    "GroupStatus",
    "Job",
    "JobDesk",
    "JobEvent",
    "JobPage",
    "JobSpec",
    "JobStatus",
    "Limits",
    "Missed",
    "ProgressReply",
    "QueueCount",
    "QueueStats",
    "Rate",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionState",
    "Schedule",
    "ThroughputMinute",
    "TypeLimits",
    "UserLoad",
    "UserUsage",
    "WaitReason",
    "Waiting",
    "Worker",
    "WorkerSeen",
    "WorkerTokenInfo",
]

__version__ = "0.1.0"

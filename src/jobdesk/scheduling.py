"""Fair scheduling: which runnable job starts next, and why a pending job waits.

Admission (``create_job``: the daily and waiting limits, :mod:`jobdesk.limits`) and
concurrency (here) are separate: a user at their running cap is not refused, their
jobs wait. Among runnable jobs the next start goes to the user furthest behind their
weighted share, by start-time fair queueing:

- every user has a virtual clock ``vtime``; starting one of their jobs moves it on by
  ``1 / weight`` (:func:`vtime_after_start`), so a user of weight 3 is started three
  times for every start of a user of weight 1 while both wait;
- the next start goes to the waiting user with the smallest ``(vtime, user_id)``, below
  their running cap, with a job this worker may run now (:func:`plan`);
- a user who had nothing waiting and now has (a new job, a retry, a requeue) comes back
  at ``max(own vtime, floor)``, the floor being the smallest clock among the users
  already waiting (:func:`vtime_on_arrival`): an idle user neither arrives with a tiny
  clock that takes everything, nor loses the share they already used;
- within one user, their own ``priority`` then age decide (:func:`user_order_key`):
  priority never lets one user jump ahead of another.

A job type may have a pool (at most ``max_running`` of its jobs processing at once,
across every worker) and a rate (``"60/min"``: starts spread evenly, one every
``period / count``, so no window of the period holds more than ``count``). Jobs over a
pool or a rate wait; they are never refused and never spend an attempt.

These functions are the rule. SQLite runs them as they are; PostgreSQL restates them
in ``jobdesk.claim_fair`` (see ``store/postgres.sql``), and the rule-twin tests hold
the two together.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jobdesk.errors import InvalidInput
from jobdesk.models import Job, JobStatus, Waiting, WaitReason

__all__ = [
    "QueuedUser",
    "Rate",
    "TypeGate",
    "TypeLimits",
    "WaitFacts",
    "candidates",
    "plan",
    "user_order_key",
    "vtime_after_start",
    "vtime_on_arrival",
    "why_waiting",
]

#: the longest period a rate may name, in seconds (one day)
MAX_RATE_PERIOD = 86_400.0
#: the most starts a rate may allow per period
MAX_RATE_COUNT = 1_000_000

_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86_400.0,
    "day": 86_400.0,
}
_RATE = re.compile(r"\s*(\d{1,7})\s*/\s*(\d{0,5})\s*([a-z]+)\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts per ``period_seconds``, spread evenly."""

    count: int
    period_seconds: float

    @classmethod
    def parse(cls, text: object, field: str = "rate") -> Rate:
        """``"60/min"``, ``"5/s"``, ``"1000/hour"``, ``"10/5min"``, ``"200/day"``.

        Units: s, sec, second, min, minute, h, hour, d, day; a number before the
        unit multiplies it. At least 1 start, a period of at most a day.
        """
        if not isinstance(text, str):
            raise InvalidInput(field, 'must be a rate such as "60/min"')
        match = _RATE.fullmatch(text.lower())
        unit = None if match is None else _PERIODS.get(match.group(3).removesuffix("s") or "s")
        if match is None or unit is None:
            raise InvalidInput(field, 'must be a rate such as "60/min" (units: s, min, hour, day)')
        count = int(match.group(1))
        period = unit * int(match.group(2) or 1)
        if not 1 <= count <= MAX_RATE_COUNT:
            raise InvalidInput(field, f"must allow 1-{MAX_RATE_COUNT} starts per period")
        if not 0 < period <= MAX_RATE_PERIOD:
            raise InvalidInput(field, "must have a period of 1 second to 1 day")
        return cls(count, period)

    @property
    def interval(self) -> timedelta:
        """The spacing between two starts, rounded up to the microsecond: rounded to the
        nearest, ``"3/s"`` would fit a fourth start into one second."""
        return timedelta(microseconds=math.ceil(self.period_seconds * 1_000_000 / self.count))

    def next_start_after(self, next_start_at: datetime | None, now: datetime) -> datetime:
        """When the next start may come, after a start at ``now``."""
        start = now if next_start_at is None or next_start_at < now else next_start_at
        return start + self.interval

    def __str__(self) -> str:
        for name in ("day", "hour", "min", "s"):
            unit = _PERIODS[name]
            if self.period_seconds % unit == 0:
                multiple = int(self.period_seconds // unit)
                return f"{self.count}/{'' if multiple == 1 else multiple}{name}"
        return f"{self.count}/{self.period_seconds:g}s"  # pragma: no cover - periods are whole


@dataclass(frozen=True, slots=True)
class TypeLimits:
    """A job type's pool and rate (``set_type_limits``); None means no limit."""

    type: str
    #: jobs of this type processing at once, across every worker
    max_running: int | None = None
    #: starts of this type per period, across every process
    rate: Rate | None = None


def vtime_after_start(vtime: float, weight: float) -> float:
    """A user's clock after one of their jobs starts: on by ``1 / weight``."""
    return vtime + 1.0 / weight


def vtime_on_arrival(vtime: float, floor: float | None) -> float:
    """A user's clock when they go from nothing waiting to something waiting.

    ``floor`` is the smallest clock among the other waiting users (None if nobody
    waits): an idle user comes back level with them, never below their own clock.
    """
    return vtime if floor is None or floor <= vtime else floor


def user_order_key(job: Job) -> tuple[int, str]:
    """The order of one user's own jobs: higher priority first, then older (smaller id)."""
    return (-job.priority, job.id)


@dataclass(slots=True)
class QueuedUser:
    """A user with waiting jobs, as the planner sees them."""

    user_id: str
    vtime: float
    weight: float
    #: their jobs processing now
    running: int
    max_running: int
    #: their pending jobs in :func:`user_order_key` order (due or not)
    jobs: list[Job] = field(default_factory=list)


@dataclass(slots=True)
class TypeGate:
    """A limited type's state during one plan: its pool and its rate."""

    limits: TypeLimits
    running: int
    next_start_at: datetime | None = None

    def open(self, now: datetime) -> bool:
        """Whether one more job of this type may start at ``now``."""
        pool = self.limits.max_running
        if pool is not None and self.running >= pool:
            return False
        return self.next_start_at is None or self.next_start_at <= now

    def started(self, now: datetime) -> None:
        """Count one start at ``now``."""
        self.running += 1
        if self.limits.rate is not None:
            self.next_start_at = self.limits.rate.next_start_after(self.next_start_at, now)


def candidates(
    walk: Iterable[QueuedUser],
    *,
    limit: int,
    now: datetime,
    allowed: Callable[[Job], bool] = lambda job: True,
    gates: dict[str, TypeGate] | None = None,
) -> list[QueuedUser]:
    """The users a claim of ``limit`` plans over: the walk's first ``limit`` users (the
    waiting users by ``(vtime, user_id)``) below their running cap with a job that is
    due, ``allowed`` and whose type's gate is open. The ``limit`` starts of a claim
    all come from them: every other user's first start would come later."""
    gates = {} if gates is None else gates
    found: list[QueuedUser] = []
    for user in walk:
        if len(found) >= limit:
            break
        if user.running < user.max_running and any(
            _startable(job, now, allowed, gates) for job in user.jobs
        ):
            found.append(user)
    return found


def plan(
    users: Iterable[QueuedUser],
    *,
    limit: int,
    now: datetime,
    allowed: Callable[[Job], bool] = lambda job: True,
    gates: dict[str, TypeGate] | None = None,
) -> list[Job]:
    """The next ``limit`` jobs to start, in order: the claim's rule, over the
    :func:`candidates` of the walk.

    Repeatedly takes the waiting user with the smallest ``(vtime, user_id)`` who is
    below their running cap, and starts their first job (in their own order) that is
    due, ``allowed`` (the worker's types) and whose type's gate is open; that user's
    clock moves on. A user with no such job is passed over for this plan. ``users``
    and ``gates`` are updated as the plan goes (clocks, running counts, rates).
    """
    gates = {} if gates is None else gates
    heap = [(user.vtime, user.user_id, user) for user in users if user.jobs]
    heapq.heapify(heap)
    chosen: list[Job] = []
    while heap and len(chosen) < limit:
        _, _, user = heapq.heappop(heap)
        if user.running >= user.max_running:
            continue
        job = next((job for job in user.jobs if _startable(job, now, allowed, gates)), None)
        if job is None:
            continue
        chosen.append(job)
        user.jobs.remove(job)
        user.running += 1
        user.vtime = vtime_after_start(user.vtime, user.weight)
        gate = gates.get(job.type)
        if gate is not None:
            gate.started(now)
        if user.jobs:
            heapq.heappush(heap, (user.vtime, user.user_id, user))
    return chosen


def _startable(
    job: Job, now: datetime, allowed: Callable[[Job], bool], gates: dict[str, TypeGate]
) -> bool:
    if job.run_at > now or not allowed(job):
        return False
    gate = gates.get(job.type)
    return gate is None or gate.open(now)


@dataclass(frozen=True, slots=True)
class WaitFacts:
    """What a store reads to explain a pending job (:func:`why_waiting`)."""

    #: the store's time
    now: datetime
    #: the user's jobs processing now, and their cap
    user_running: int
    user_max_running: int
    #: the job's type's pool and rate, if it has either
    gate: TypeGate | None
    #: the user's own due jobs before it (:func:`user_order_key`), if counted
    ahead: int | None


def why_waiting(job: Job, facts: WaitFacts) -> Waiting | None:
    """Why a pending job has not started, for its owner; None for any other status.

    In the order a claim would find it: not due yet (``backoff`` after a failure,
    ``scheduled`` otherwise), the user's running cap, the type's pool, the type's
    rate, else ``queued`` (its turn; ``ahead`` is how many of the user's own
    runnable jobs come before it, when the store counted them).
    """
    if job.status is not JobStatus.PENDING:
        return None
    now, gate = facts.now, facts.gate
    if job.run_at > now:
        reason = WaitReason.BACKOFF if job.error is not None else WaitReason.SCHEDULED
        return Waiting(reason, until=job.run_at)
    if facts.user_running >= facts.user_max_running:
        return Waiting(
            WaitReason.USER_RUNNING_LIMIT,
            running=facts.user_running,
            limit=facts.user_max_running,
        )
    if gate is not None:
        pool = gate.limits.max_running
        if pool is not None and gate.running >= pool:
            return Waiting(WaitReason.TYPE_POOL, running=gate.running, limit=pool)
        if gate.next_start_at is not None and gate.next_start_at > now:
            return Waiting(WaitReason.TYPE_RATE, until=gate.next_start_at)
    return Waiting(WaitReason.QUEUED, ahead=facts.ahead)

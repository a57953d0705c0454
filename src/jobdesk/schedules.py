"""Schedules: the rule that turns a cron expression into jobs, once per tick.

A schedule (:class:`Schedule`) names a cron expression, a time zone, and the job
to create at each of its ticks (type, input, owner). The stores keep one row per
schedule with the time of its next tick (``next_run_at``); a runner (``jobdesk
serve``, a worker on the database) asks the store for the schedules that are due,
and the store, inside the transaction that holds their rows locked, calls
:func:`fire` on each, creates the job it says, and writes the schedule's next
tick. So a tick makes one job however many runners race for it, and a runner
that dies mid-way leaves the row as it was for the next one.

Missed ticks (nothing ran while they fell due: every process was down, or the
schedule's row was locked for longer than a tick) follow the schedule's policy
(:class:`Missed`): ``once`` makes one job for all of them, then goes on from the
first tick after now; ``skip`` makes none for a tick more than :data:`ON_TIME`
late, and goes on from the first tick after now. Either way a missed stretch
costs at most one job, never a burst.

Cron expressions have five fields (minute, hour, day of month, month, day of
week) as :mod:`cronsim` reads them, or one of the aliases in :data:`ALIASES`; they
are evaluated in the schedule's IANA time zone (``zoneinfo``), so ``0 9 * * *``
in ``Europe/Paris`` is 09:00 there, summer and winter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from jobdesk.errors import InvalidInput
from jobdesk.ids import new_job_id
from jobdesk.models import JSONValue, NewJob

__all__ = [
    "ALIASES",
    "NAME_PATTERN",
    "ON_TIME",
    "Firing",
    "Missed",
    "NewSchedule",
    "Schedule",
    "create",
    "cron_expression",
    "fire",
    "fired",
    "is_due",
    "job_for",
    "missed_policy",
    "next_tick",
    "pause",
    "resume",
    "schedule_name",
    "tick_key",
    "time_zone",
]

#: a schedule's name: what the operator calls it, unique in the deployment
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
#: how late a tick may run and still count as on time under ``missed="skip"``
ON_TIME = timedelta(minutes=1)
#: the cron aliases accepted, as the five-field expressions they stand for
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_CRON_LENGTH = 200
_MAX_ZONE_LENGTH = 64


class Missed(StrEnum):
    """What a schedule does with ticks that fell due while nothing ran."""

    #: one job for all the missed ticks (for the first of them), then on schedule
    ONCE = "once"
    #: no job for a tick more than ``ON_TIME`` late; on schedule from the next tick
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class NewSchedule:
    """A validated request for a schedule, before the store stamps its times."""

    name: str
    cron: str
    timezone: str
    missed: Missed
    type: str
    input: JSONValue
    #: ``input`` serialized once, by validation, for the store to write
    input_json: str
    user_id: str
    project_id: str | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule: what it creates, when, and what its last tick did."""

    name: str
    #: five fields, as given (an alias stays an alias)
    cron: str
    #: the IANA time zone the expression is read in
    timezone: str
    missed: Missed
    #: the type, input, owner and project of every job it creates
    type: str
    input: JSONValue
    user_id: str
    project_id: str | None
    #: the next tick, in UTC: the time its job is due to be created
    next_run_at: datetime
    created_at: datetime
    updated_at: datetime
    #: a paused schedule makes no jobs; resuming starts from the next tick after then
    paused: bool = False
    #: the tick the last job was made for, and that job's id
    last_tick_at: datetime | None = None
    last_job_id: str | None = None
    #: why the last tick made no job (the owner's limits refused it; skipped as late)
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Firing:
    """What one due schedule does now (:func:`fire`)."""

    #: the tick being dealt with (the schedule's ``next_run_at``)
    tick: datetime
    #: whether a job is created for it
    run: bool
    #: the schedule's next tick: the first one after now
    next_run_at: datetime
    #: why no job is created (None when one is)
    skipped: str | None = None


def schedule_name(value: object, field: str = "name") -> str:
    """A schedule's name: ``[A-Za-z0-9_.:@-]{1,64}``."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidInput(field, "must match [A-Za-z0-9_.:@-]{1,64}")
    return value


def cron_expression(value: object, field: str = "cron") -> str:
    """A cron expression of five fields (or an alias such as ``@daily``), normalised.

    :class:`~jobdesk.errors.InvalidInput` names the field and what is wrong:
    ``61 * * * *`` is refused for its minute, ``0 0 31 2 *`` because it never
    comes, six fields because jobdesk schedules to the minute.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_CRON_LENGTH:
        raise InvalidInput(field, f"must be a cron expression of 1-{_MAX_CRON_LENGTH} characters")
    expression = " ".join(value.split())
    expanded = ALIASES.get(expression.lower(), expression)
    if expanded.startswith("@"):
        raise InvalidInput(field, f"unknown alias {expression!r}; known: {', '.join(ALIASES)}")
    if len(expanded.split(" ")) != 5:
        raise InvalidInput(
            field, "must have five fields: minute hour day-of-month month day-of-week"
        )
    try:
        next(CronSim(expanded, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise InvalidInput(field, f"is not a valid cron expression: {exc}") from None
    except StopIteration:  # pragma: no cover - cronsim reports impossible dates itself
        raise InvalidInput(field, "never comes: no date matches it") from None
    return expression


def time_zone(value: object, field: str = "timezone") -> str:
    """An IANA time zone name known to this machine (``UTC``, ``Europe/Paris``)."""
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_ZONE_LENGTH:
        raise InvalidInput(field, "must be an IANA time zone name such as UTC or Europe/Paris")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        # ValueError: a path-like or otherwise malformed key, never looked up.
        raise InvalidInput(
            field, f"unknown time zone {value!r}: use an IANA name such as Europe/Paris"
        ) from None
    return value


def missed_policy(value: object, field: str = "missed") -> Missed:
    """``once`` or ``skip`` (:class:`Missed`)."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be 'once' or 'skip'")
    try:
        return Missed(value)
    except ValueError:
        raise InvalidInput(field, "must be 'once' or 'skip'") from None


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick of ``cron`` in ``timezone`` strictly after ``after``, in UTC."""
    zone = ZoneInfo(timezone)
    expression = ALIASES.get(cron.lower(), cron)
    local = next(CronSim(expression, after.astimezone(zone)))
    return local.astimezone(UTC)


def is_due(schedule: Schedule, now: datetime) -> bool:
    """Whether a runner fires ``schedule`` now: not paused, and its next tick has come."""
    return not schedule.paused and schedule.next_run_at <= now


def fire(schedule: Schedule, now: datetime) -> Firing:
    """What a due schedule (``next_run_at <= now``) does now; the stores obey it.

    The tick is ``next_run_at``. Under ``once`` it always makes a job (one for any
    number of missed ticks); under ``skip`` only if it is at most :data:`ON_TIME`
    late. The next tick is the first one after ``now``, so every tick up to now is
    dealt with by this one firing.
    """
    tick = schedule.next_run_at
    if tick > now:
        raise ValueError(f"schedule {schedule.name} is not due until {tick.isoformat()}")
    following = next_tick(schedule.cron, schedule.timezone, now)
    late = now - tick
    if schedule.missed is Missed.SKIP and late > ON_TIME:
        reason = f"skipped the tick of {tick.isoformat()}: {late} late (missed='skip')"
        return Firing(tick, run=False, next_run_at=following, skipped=reason)
    return Firing(tick, run=True, next_run_at=following)


def fired(
    schedule: Schedule,
    firing: Firing,
    now: datetime,
    *,
    job_id: str | None = None,
    refused: str | None = None,
) -> Schedule:
    """The schedule after ``firing``: on to its next tick, with what this one did
    (the job made, or why none was: skipped as late, or ``refused`` by the owner's
    limits)."""
    made = firing.run and job_id is not None
    return replace(
        schedule,
        next_run_at=firing.next_run_at,
        updated_at=now,
        last_tick_at=firing.tick if made else schedule.last_tick_at,
        last_job_id=job_id if made else schedule.last_job_id,
        last_error=None if made else (refused or firing.skipped),
    )


def resume(schedule: Schedule, now: datetime) -> Schedule:
    """A paused schedule running again: its next tick is the first after ``now``
    (the ticks that fell due while it was paused are not made up); unchanged if it
    was not paused."""
    if not schedule.paused:
        return schedule
    return replace(
        schedule,
        paused=False,
        next_run_at=next_tick(schedule.cron, schedule.timezone, now),
        updated_at=now,
    )


def pause(schedule: Schedule, now: datetime) -> Schedule:
    """A schedule that makes no jobs until it is resumed; unchanged if already paused."""
    if schedule.paused:
        return schedule
    return replace(schedule, paused=True, updated_at=now)


def create(spec: NewSchedule, now: datetime) -> Schedule:
    """A new schedule from a validated request: its first tick is the first after ``now``."""
    return Schedule(
        name=spec.name,
        cron=spec.cron,
        timezone=spec.timezone,
        missed=spec.missed,
        type=spec.type,
        input=spec.input,
        user_id=spec.user_id,
        project_id=spec.project_id,
        next_run_at=next_tick(spec.cron, spec.timezone, now),
        created_at=now,
        updated_at=now,
    )


def tick_key(name: str, tick: datetime) -> str:
    """The idempotency key of the job made for ``tick``: one job per (schedule, tick),
    guarded by the jobs' unique key on (user, idempotency key)."""
    return f"schedule:{name}@{tick.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def job_for(schedule: Schedule, firing: Firing, max_attempts: int) -> NewJob:
    """The job a firing makes: the schedule's type, input, owner and project, due now,
    keyed by :func:`tick_key` so that a tick can make one job at most."""
    return NewJob(
        id=new_job_id(),
        user_id=schedule.user_id,
        type=schedule.type,
        input=schedule.input,
        input_json=json.dumps(schedule.input, separators=(",", ":"), ensure_ascii=False),
        max_attempts=max_attempts,
        project_id=schedule.project_id,
        idempotency_key=tick_key(schedule.name, firing.tick),
    )

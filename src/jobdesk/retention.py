"""Retention: how long a finished job is kept, and which ones a retention pass deletes.

A :class:`RetentionPolicy` gives each finished status a period (``completed`` 7
days, ``failed`` and ``cancelled`` 30 days by default), optionally a different
one for a job type (``types={"render": {"failed": timedelta(days=90)}}``), and
``None`` for "keep forever". :func:`is_expired` is the rule, written once: a
finished job is expired at ``now`` when it finished more than its period ago.
The stores' ``expired_jobs`` queries restate it through :meth:`RetentionPolicy.cutoffs`
(one row per status and per overridden type), and a scenario table in the tests
runs both.

A pass (:meth:`jobdesk.JobDesk.apply_retention`) deletes expired jobs in small
batches, each its own short transaction, with their history (``job_events``),
and only while it holds the deployment's one retention lease: two processes
never run a pass at once. Pending and processing jobs are never touched.
Policies read from text (``JOBDESK_RETENTION``, ``jobdesk retention --policy``)
use :func:`parse`: ``completed=7d,failed=30d,render.failed=90d,cancelled=forever``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from jobdesk.errors import InvalidInput
from jobdesk.models import JobStatus
from jobdesk.validation import TYPE_PATTERN

__all__ = [
    "DEFAULT_PERIODS",
    "FINISHED",
    "MAX_PERIOD",
    "MIN_PERIOD",
    "Cutoff",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionState",
    "format_period",
    "is_expired",
    "parse",
    "parse_period",
]

#: the statuses a retention policy speaks of, in the order they are shown
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
#: the periods of a policy made with no arguments
DEFAULT_PERIODS: Mapping[JobStatus, timedelta] = MappingProxyType(
    {
        JobStatus.COMPLETED: timedelta(days=7),
        JobStatus.FAILED: timedelta(days=30),
        JobStatus.CANCELLED: timedelta(days=30),
    }
)
#: the shortest period: a job is never deleted the second it finishes (its owner's
#: page, stream or webhook may still be reading it)
MIN_PERIOD = timedelta(minutes=1)
#: the longest period short of ``None`` (keep forever): ten years
MAX_PERIOD = timedelta(days=3650)
#: how many job types one policy may name
MAX_TYPES = 1000

_PERIOD_TEXT = re.compile(r"(\d{1,7})(s|m|min|h|d|w)")
_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_FOREVER = "forever"


def _period(field_name: str, value: object) -> timedelta | None:
    """A period as a policy keeps it: a timedelta within bounds, or None (keep forever)."""
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise InvalidInput(field_name, "must be a timedelta, or None to keep forever")
    if value < MIN_PERIOD:
        raise InvalidInput(field_name, f"must be at least {format_period(MIN_PERIOD)}")
    if value > MAX_PERIOD:
        raise InvalidInput(
            field_name, f"must be at most {MAX_PERIOD.days} days (None keeps forever)"
        )
    return value


def _status(field_name: str, value: object) -> JobStatus:
    for status in FINISHED:
        if value == status.value:
            return status
    raise InvalidInput(field_name, "must be completed, failed or cancelled")


@dataclass(frozen=True, slots=True)
class Cutoff:
    """One row of a policy as the stores' SQL reads it: jobs of ``status`` (and of
    ``type``, or of every type not named elsewhere when None) finished before
    ``before`` are expired; ``before`` None keeps them forever."""

    status: JobStatus
    type: str | None
    before: datetime | None


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each finished status is kept, overridable per job type.

    A period is a :class:`~datetime.timedelta` from :data:`MIN_PERIOD` to
    :data:`MAX_PERIOD`, or None to keep those jobs forever. ``types`` maps a job
    type to the statuses it keeps for a different period:
    ``{"render": {"failed": timedelta(days=90), "completed": None}}``.
    """

    #: how long a completed job is kept after it finished; None keeps it forever
    completed: timedelta | None = DEFAULT_PERIODS[JobStatus.COMPLETED]
    #: how long a failed job is kept
    failed: timedelta | None = DEFAULT_PERIODS[JobStatus.FAILED]
    #: how long a cancelled job is kept
    cancelled: timedelta | None = DEFAULT_PERIODS[JobStatus.CANCELLED]
    #: per job type, the statuses whose period differs from the ones above
    types: Mapping[str, Mapping[JobStatus, timedelta | None]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        for status in FINISHED:
            _period(f"retention.{status}", getattr(self, status.value))
        if not isinstance(self.types, Mapping):
            raise InvalidInput("retention.types", "must map job types to periods by status")
        if len(self.types) > MAX_TYPES:
            raise InvalidInput("retention.types", f"must name at most {MAX_TYPES} job types")
        checked: dict[str, Mapping[JobStatus, timedelta | None]] = {}
        for type_name, periods in self.types.items():
            if not isinstance(type_name, str) or not TYPE_PATTERN.fullmatch(type_name):
                raise InvalidInput(
                    "retention.types", f"{type_name!r} is not a job type ([a-z0-9_.-]{{1,64}})"
                )
            where = f"retention.types.{type_name}"
            if not isinstance(periods, Mapping) or not periods:
                raise InvalidInput(where, "must map at least one finished status to a period")
            checked[type_name] = MappingProxyType(
                {
                    _status(where, status): _period(f"{where}.{status}", period)
                    for status, period in periods.items()
                }
            )
        object.__setattr__(self, "types", MappingProxyType(checked))

    def period_for(self, status: JobStatus, type: str) -> timedelta | None:  # noqa: A002
        """How long a finished job of ``status`` and ``type`` is kept; None: forever."""
        override = self.types.get(type)
        if override is not None and status in override:
            return override[status]
        period: timedelta | None = getattr(self, status.value)
        return period

    def cutoffs(self, now: datetime) -> list[Cutoff]:
        """The policy at ``now`` as rows for the stores: per status, then per type."""
        rows = [
            Cutoff(status, None, _before(now, getattr(self, status.value))) for status in FINISHED
        ]
        for type_name, periods in sorted(self.types.items()):
            for status, period in periods.items():
                rows.append(Cutoff(status, type_name, _before(now, period)))
        return rows

    def describe(self) -> list[tuple[str, str, str]]:
        """(status, type or ``*``, period) rows, as the CLI and the dashboard show them."""
        rows = [
            (str(status), "*", format_period(getattr(self, status.value))) for status in FINISHED
        ]
        for type_name, periods in sorted(self.types.items()):
            for status in FINISHED:
                if status in periods:
                    rows.append((str(status), type_name, format_period(periods[status])))
        return rows

    def to_text(self) -> str:
        """The policy in :func:`parse`'s syntax."""
        parts = [f"{status}={format_period(getattr(self, status.value))}" for status in FINISHED]
        for type_name, periods in sorted(self.types.items()):
            for status in FINISHED:
                if status in periods:
                    parts.append(f"{type_name}.{status}={format_period(periods[status])}")
        return ",".join(parts)


def _before(now: datetime, period: timedelta | None) -> datetime | None:
    return None if period is None else now - period


def is_expired(
    policy: RetentionPolicy,
    status: JobStatus,
    type: str,  # noqa: A002 - the jobs' own word for it
    finished_at: datetime | None,
    now: datetime,
) -> bool:
    """The rule: a job is expired at ``now`` when it finished (completed, failed or
    cancelled) more than its period ago; never when its period is None (kept forever)
    or it has not finished. The stores' ``expired_jobs`` queries restate it."""
    if status not in FINISHED or finished_at is None:
        return False
    period = policy.period_for(status, type)
    return period is not None and finished_at < now - period


def parse_period(field_name: str, text: str) -> timedelta | None:
    """``90d``, ``12h``, ``30min``, ``2w``, ``45s`` or ``forever`` (None)."""
    text = text.strip().lower()
    if text == _FOREVER:
        return None
    found = _PERIOD_TEXT.fullmatch(text)
    if found is None:
        raise InvalidInput(
            field_name, "must be a whole number with a unit (s, min, h, d, w) or 'forever'"
        )
    return _period(field_name, int(found.group(1)) * _UNITS[found.group(2)])


def format_period(period: timedelta | None) -> str:
    """A period as :func:`parse_period` reads it back."""
    if period is None:
        return _FOREVER
    seconds = int(period.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse(text: str) -> RetentionPolicy:
    """A policy from text: comma-separated ``status=period`` or ``type.status=period``.

    Statuses not named keep their defaults: ``completed=1d,render.failed=forever``.
    """
    if not isinstance(text, str):
        raise InvalidInput("retention", "must be text such as 'completed=7d,failed=30d'")
    periods: dict[str, timedelta | None] = {}
    types: dict[str, dict[JobStatus, timedelta | None]] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        key, equals, value = part.partition("=")
        key = key.strip()
        if not equals:
            raise InvalidInput("retention", f"{part!r} must be status=period or type.status=period")
        type_name, dot, status_text = key.rpartition(".")
        if not dot:
            status = _status(f"retention.{key}", key)
            periods[status.value] = parse_period(f"retention.{status}", value)
            continue
        where = f"retention.types.{type_name}"
        if not TYPE_PATTERN.fullmatch(type_name):
            raise InvalidInput("retention.types", f"{type_name!r} is not a job type")
        status = _status(where, status_text)
        types.setdefault(type_name, {})[status] = parse_period(f"{where}.{status}", value)
    return RetentionPolicy(**periods, types=types)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention pass did (or, with ``dry_run``, would do)."""

    #: the store's time when the pass began, which every period was measured from
    started_at: datetime
    #: when it ended
    finished_at: datetime
    #: jobs deleted (or expired, on a dry run), by status; statuses with none are absent
    deleted: Mapping[JobStatus, int]
    #: the batches it ran (each one short transaction)
    batches: int = 0
    #: False when another process held the retention lease: this pass did nothing
    ran: bool = True
    #: True when it only counted
    dry_run: bool = False
    #: True when it stopped at ``max_batches`` after a full batch: expired jobs may be left
    more: bool = False

    @property
    def total(self) -> int:
        """Jobs deleted across statuses."""
        return sum(self.deleted.values())


@dataclass(frozen=True, slots=True)
class RetentionState:
    """The deployment's retention lease and its last completed pass, as the store keeps them."""

    #: who holds the lease now (a process's name), None when free
    holder: str | None
    #: until when; a holder that died loses it then
    held_until: datetime | None
    #: the last pass that finished, None before the first
    last_run: RetentionReport | None

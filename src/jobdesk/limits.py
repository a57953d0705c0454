"""Limits: the defaults, the per-user admission checks and the retry backoff.

Admission is checked at ``create_job`` (and ``retry_job``): the jobs a user may
create per UTC day and the pending jobs they may hold. Concurrency (how many of a
user's jobs run at once) is not an admission limit: a user at their running cap is
not refused, their jobs wait (:mod:`jobdesk.scheduling`).

The checks are pure functions; a store calls them inside the transaction that
holds the user's row, which is what makes them atomic.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobdesk.errors import InvalidInput, RateLimited
from jobdesk.models import UserLimits, UserUsage

#: the jitter's own generator: the global ``random`` module's state stays the caller's
#: (a test framework that seeds or watches it, Hypothesis, sees no draw of ours)
_JITTER = random.Random()  # noqa: S311 - jitter, not security

__all__ = [
    "EffectiveLimits",
    "Limits",
    "check_daily",
    "check_waiting",
    "next_midnight",
    "retry_backoff",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Defaults for every user and job; per-user overrides come from ``set_user_limits``."""

    #: jobs of one user processing at once; further jobs wait (they are not refused)
    max_running_per_user: int = 10
    #: pending jobs one user may hold; ``create_job`` refuses past it
    max_waiting_per_user: int = 1000
    #: jobs one user may create per UTC day
    max_created_per_day: int = 1000
    #: seconds a worker holds a job without a progress report or heartbeat
    lease_seconds: float = 300.0
    #: starts per job before a failure is final (``create_job`` may override)
    max_attempts: int = 3
    #: first retry delay in seconds; doubles with every attempt, with jitter
    retry_backoff_seconds: float = 5.0
    #: the longest retry delay in seconds
    retry_backoff_max_seconds: float = 3600.0
    #: serialized JSON input size limit in bytes
    max_input_bytes: int = 256 * 1024
    #: JSON input nesting depth limit (results too)
    max_input_depth: int = 32
    #: serialized JSON result size limit in bytes
    max_result_bytes: int = 1024 * 1024
    #: deprecated: the old limit of pending + processing jobs; it now sets
    #: ``max_running_per_user`` (jobs past the cap wait instead of being refused)
    max_active_per_user: int | None = None

    def __post_init__(self) -> None:
        if self.max_active_per_user is not None:
            warnings.warn(
                "Limits(max_active_per_user=) is deprecated: use max_running_per_user "
                "(jobs past it now wait) and max_waiting_per_user (pending jobs a user may hold)",
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "max_running_per_user", self.max_active_per_user)
            object.__setattr__(self, "max_active_per_user", None)
        # The smallest value of each integer limit: 2 bytes hold '{}', 4 hold 'null'.
        smallest = {
            "max_running_per_user": 1,
            "max_waiting_per_user": 1,
            "max_created_per_day": 1,
            "max_attempts": 1,
            "max_input_depth": 1,
            "max_input_bytes": 2,
            "max_result_bytes": 4,
        }
        for name, low in smallest.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInput(name, f"must be an integer of at least {low}")
        for name in ("lease_seconds", "retry_backoff_seconds", "retry_backoff_max_seconds"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidInput(name, "must be a positive, finite number of seconds")

    def for_user(self, overrides: UserLimits | None) -> EffectiveLimits:
        """A user's limits: their overrides where set, these defaults elsewhere."""
        if overrides is None:
            overrides = UserLimits()
        return EffectiveLimits(
            max_running=_pick(overrides.max_running, self.max_running_per_user),
            max_waiting=_pick(overrides.max_waiting, self.max_waiting_per_user),
            max_daily=_pick(overrides.max_daily, self.max_created_per_day),
            weight=DEFAULT_WEIGHT if overrides.weight is None else overrides.weight,
        )


def _pick(override: int | None, default: int) -> int:
    return default if override is None else override


#: a user's share of the workers when none was set (``set_user_limits(weight=)``)
DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    """The limits that hold for one user: overrides, else the defaults."""

    max_running: int
    max_waiting: int
    max_daily: int
    weight: float


def next_midnight(now: datetime) -> datetime:
    """The next UTC midnight after ``now``: when the daily count starts again."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def usage_day(now: datetime) -> str:
    """The UTC day ``now`` falls on, as ``YYYY-MM-DD``: the key of the daily count."""
    return now.astimezone(UTC).date().isoformat()


def overrides_of(user_row: Mapping[str, Any] | None) -> UserLimits:
    """A user's stored overrides (a ``users`` row of either store; None: no row)."""
    if user_row is None:
        return UserLimits()
    return UserLimits(
        max_running=user_row["max_running"],
        max_waiting=user_row["max_waiting"],
        max_daily=user_row["max_daily"],
        weight=user_row["weight"],
    )


def created_today(user_row: Mapping[str, Any] | None, now: datetime) -> int:
    """The user's creations counted for ``now``'s UTC day: a count kept for an earlier
    day reads as zero (the daily reset)."""
    if user_row is None or str(user_row["usage_day"]) != usage_day(now):
        return 0
    count: int = user_row["created_on_day"]
    return count


def usage(
    user_id: str,
    running: int,
    user_row: Mapping[str, Any] | None,
    limits: Limits,
    now: datetime,
) -> UserUsage:
    """A user's usage from their stored row (overrides, counted day and count, pending
    jobs) and their processing jobs."""
    effective = limits.for_user(overrides_of(user_row))
    return UserUsage(
        user_id=user_id,
        running=running,
        max_running=effective.max_running,
        waiting=0 if user_row is None else user_row["waiting"],
        max_waiting=effective.max_waiting,
        created_today=created_today(user_row, now),
        max_daily=effective.max_daily,
        resets_at=next_midnight(now),
        weight=effective.weight,
    )


def check_waiting(waiting: int, max_waiting: int, count: int = 1) -> None:
    """Refuse ``count`` more pending jobs when they would not fit beside ``waiting``."""
    if waiting + count > max_waiting:
        raise RateLimited("waiting", max_waiting, fits=max(0, max_waiting - waiting))


def check_daily(created_today: int, max_daily: int, now: datetime, count: int = 1) -> None:
    """Refuse ``count`` more jobs today when they would not fit beside ``created_today``."""
    if created_today + count > max_daily:
        wait = next_midnight(now) - now
        raise RateLimited(
            "daily",
            max_daily,
            retry_after=max(1, math.ceil(wait.total_seconds())),
            fits=max(0, max_daily - created_today),
        )


def retry_backoff(limits: Limits, attempts_made: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next attempt: exponential, capped, with "equal jitter".

    Half of the delay is fixed and half random, so retries of jobs that failed
    together spread out but never come back sooner than half the nominal delay.
    """
    # Past 1000 doublings every delay is capped; 2.0 ** 1024 would raise OverflowError.
    doublings = min(max(0, attempts_made - 1), 1000)
    nominal = min(limits.retry_backoff_max_seconds, limits.retry_backoff_seconds * 2.0**doublings)
    draw: float = (rng or _JITTER).random()
    return nominal / 2 + nominal / 2 * draw

"""Limits: the defaults, the per-user checks and the retry backoff.

The checks are pure functions; a store calls them inside the transaction that
holds the user's row, which is what makes them atomic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobdesk.errors import InvalidInput, RateLimited
from jobdesk.models import UserLimits, UserUsage

__all__ = ["Limits", "check_active", "check_daily", "next_midnight", "retry_backoff"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Defaults for every user and job; per-user overrides come from ``set_user_limits``."""

    #: pending + processing jobs one user may have at once
    max_active_per_user: int = 10
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

    def __post_init__(self) -> None:
        # The smallest value of each integer limit: 2 bytes hold '{}', 4 hold 'null'.
        smallest = {
            "max_active_per_user": 1,
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

    def for_user(self, overrides: UserLimits | None) -> tuple[int, int]:
        """``(max_active, max_daily)`` for a user with these overrides."""
        if overrides is None:
            return self.max_active_per_user, self.max_created_per_day
        return (
            self.max_active_per_user if overrides.max_active is None else overrides.max_active,
            self.max_created_per_day if overrides.max_daily is None else overrides.max_daily,
        )


def next_midnight(now: datetime) -> datetime:
    """The next UTC midnight after ``now``: when the daily count starts again."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def usage_day(now: datetime) -> str:
    """The UTC day ``now`` falls on, as ``YYYY-MM-DD``: the key of the daily count."""
    return now.astimezone(UTC).date().isoformat()


def usage(
    user_id: str,
    active: int,
    user_row: Mapping[str, Any] | None,
    limits: Limits,
    now: datetime,
) -> UserUsage:
    """A user's usage from their stored row (overrides, counted day, count): a count
    kept for an earlier UTC day reads as zero."""
    overrides = (
        None if user_row is None else UserLimits(user_row["max_active"], user_row["max_daily"])
    )
    max_active, max_daily = limits.for_user(overrides)
    counted_today = user_row is not None and str(user_row["usage_day"]) == usage_day(now)
    created = user_row["created_on_day"] if user_row is not None and counted_today else 0
    return UserUsage(user_id, active, max_active, created, max_daily, next_midnight(now))


def check_active(active: int, max_active: int) -> None:
    """Refuse one more active job when ``active`` already fills the limit."""
    if active >= max_active:
        raise RateLimited("active", max_active)


def check_daily(created_today: int, max_daily: int, now: datetime) -> None:
    """Refuse one more job today when ``created_today`` already fills the limit."""
    if created_today >= max_daily:
        wait = next_midnight(now) - now
        raise RateLimited("daily", max_daily, retry_after=max(1, math.ceil(wait.total_seconds())))


def retry_backoff(limits: Limits, attempts_made: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next attempt: exponential, capped, with "equal jitter".

    Half of the delay is fixed and half random, so retries of jobs that failed
    together spread out but never come back sooner than half the nominal delay.
    """
    # Past 1000 doublings every delay is capped; 2.0 ** 1024 would raise OverflowError.
    doublings = min(max(0, attempts_made - 1), 1000)
    nominal = min(limits.retry_backoff_max_seconds, limits.retry_backoff_seconds * 2.0**doublings)
    draw: float = (rng or random).random()
    return nominal / 2 + nominal / 2 * draw

"""Limits: their validation, per-user overrides, the checks and the retry backoff."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from jobdesk.errors import InvalidInput, RateLimited
from jobdesk.limits import (
    EffectiveLimits,
    Limits,
    check_daily,
    check_waiting,
    created_today,
    next_midnight,
    overrides_of,
    retry_backoff,
    usage,
    usage_day,
)
from jobdesk.models import UserLimits, UserUsage

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=2))


def refuses(check: Callable[[], None]) -> bool:
    """Whether ``check`` raises RateLimited."""
    try:
        check()
    except RateLimited:
        return True
    return False


class FixedDraw(random.Random):
    """A random source that always draws the same number."""

    def __init__(self, draw: float) -> None:
        super().__init__()
        self.draw = draw

    def random(self) -> float:
        return self.draw


def test_the_default_limits_are_the_documented_ones() -> None:
    limits = Limits()
    assert (limits.max_running_per_user, limits.max_waiting_per_user) == (10, 1000)
    assert limits.max_created_per_day == 1000
    assert limits.max_active_per_user is None
    assert (limits.max_input_bytes, limits.max_input_depth) == (256 * 1024, 32)
    assert limits.max_attempts == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_running_per_user", 0),
        ("max_running_per_user", -1),
        ("max_running_per_user", True),
        ("max_running_per_user", 2.5),
        ("max_waiting_per_user", 0),
        ("max_waiting_per_user", "1000"),
        ("max_created_per_day", 0),
        ("max_created_per_day", "1000"),
        ("max_attempts", 0),
        ("max_attempts", None),
        ("lease_seconds", 0),
        ("lease_seconds", -30.0),
        ("lease_seconds", True),
        ("lease_seconds", "300"),
        ("lease_seconds", math.nan),
        ("lease_seconds", math.inf),
        ("retry_backoff_seconds", 0.0),
        ("retry_backoff_seconds", math.nan),
        ("retry_backoff_max_seconds", -1),
        ("retry_backoff_max_seconds", math.inf),
        ("max_input_bytes", 1),
        ("max_input_bytes", "lots"),
        ("max_input_depth", 0),
        ("max_input_depth", -3),
        ("max_result_bytes", 0),
        ("max_result_bytes", -1),
    ],
)
def test_a_bad_limit_is_refused_naming_its_field(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        Limits(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == field


def test_the_smallest_sensible_limits_are_accepted() -> None:
    limits = Limits(
        max_running_per_user=1,
        max_waiting_per_user=1,
        max_created_per_day=1,
        max_attempts=1,
        lease_seconds=0.5,
        retry_backoff_seconds=1,
        retry_backoff_max_seconds=1,
        max_input_bytes=2,
        max_input_depth=1,
    )
    assert limits.lease_seconds == 0.5


def test_without_overrides_a_user_gets_the_defaults() -> None:
    limits = Limits(max_running_per_user=4, max_waiting_per_user=20, max_created_per_day=40)
    expected = EffectiveLimits(max_running=4, max_waiting=20, max_daily=40, weight=1.0)
    assert limits.for_user(None) == expected
    assert limits.for_user(UserLimits()) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (UserLimits(max_running=50), (50, 1000, 1000, 1.0)),
        (UserLimits(max_waiting=5), (10, 5, 1000, 1.0)),
        (UserLimits(max_daily=5000), (10, 1000, 5000, 1.0)),
        (UserLimits(weight=3.0), (10, 1000, 1000, 3.0)),
        (UserLimits(max_running=1, max_daily=2), (1, 1000, 2, 1.0)),
        (UserLimits(max_running=0, max_waiting=0, max_daily=0), (0, 0, 0, 1.0)),
    ],
)
def test_a_users_overrides_replace_only_what_they_name(
    overrides: UserLimits, expected: tuple[int, int, int, float]
) -> None:
    effective = Limits().for_user(overrides)
    assert (
        effective.max_running,
        effective.max_waiting,
        effective.max_daily,
        effective.weight,
    ) == expected


def test_the_deprecated_active_limit_warns_and_sets_the_running_cap() -> None:
    with pytest.warns(DeprecationWarning, match="max_running_per_user"):
        limits = Limits(max_active_per_user=4)
    assert limits.max_running_per_user == 4
    assert limits.max_active_per_user is None
    assert limits.max_waiting_per_user == 1000


def test_the_deprecated_active_limit_is_checked_as_the_running_cap() -> None:
    with (
        pytest.warns(DeprecationWarning, match="deprecated"),
        pytest.raises(InvalidInput) as caught,
    ):
        Limits(max_active_per_user=0)
    assert caught.value.field == "max_running_per_user"


@given(
    waiting=st.integers(0, 10_000), max_waiting=st.integers(0, 10_000), count=st.integers(1, 1000)
)
def test_more_pending_jobs_are_allowed_only_while_they_fit(
    waiting: int, max_waiting: int, count: int
) -> None:
    assert refuses(lambda: check_waiting(waiting, max_waiting, count)) is (
        waiting + count > max_waiting
    )


def test_the_waiting_limit_says_which_limit_and_what_to_do() -> None:
    with pytest.raises(RateLimited) as caught:
        check_waiting(1000, 1000)
    assert (caught.value.limit, caught.value.allowed, caught.value.retry_after) == (
        "waiting",
        1000,
        None,
    )
    assert "cancel" in str(caught.value)
    assert "pending" in str(caught.value)


@given(
    created_today=st.integers(0, 5000), max_daily=st.integers(0, 5000), count=st.integers(1, 1000)
)
def test_a_batch_today_is_allowed_only_if_all_of_it_fits(
    created_today: int, max_daily: int, count: int
) -> None:
    assert refuses(lambda: check_daily(created_today, max_daily, NOON, count)) is (
        created_today + count > max_daily
    )


def row(**values: Any) -> dict[str, Any]:
    """A ``users`` row as either store reads it."""
    base: dict[str, Any] = {
        "max_running": None,
        "max_waiting": None,
        "max_daily": None,
        "weight": None,
        "usage_day": "2026-03-01",
        "created_on_day": 0,
        "waiting": 0,
    }
    return base | values


def test_a_users_row_gives_their_overrides() -> None:
    assert overrides_of(None) == UserLimits()
    assert overrides_of(row(max_running=3, max_waiting=7, max_daily=9, weight=2.5)) == (
        UserLimits(max_running=3, max_waiting=7, max_daily=9, weight=2.5)
    )


def test_the_daily_count_reads_as_zero_on_a_later_day() -> None:
    assert created_today(None, NOON) == 0
    assert created_today(row(created_on_day=12), NOON) == 12
    assert created_today(row(created_on_day=12), NOON + timedelta(days=1)) == 0
    assert created_today(row(usage_day="2026-02-28", created_on_day=12), NOON) == 0


def test_usage_reports_running_waiting_and_the_effective_limits() -> None:
    stored = row(max_running=3, weight=2.0, created_on_day=5, waiting=4)
    assert usage("alice", 2, stored, Limits(), NOON) == UserUsage(
        user_id="alice",
        running=2,
        max_running=3,
        waiting=4,
        max_waiting=1000,
        created_today=5,
        max_daily=1000,
        resets_at=datetime(2026, 3, 2, tzinfo=UTC),
        weight=2.0,
    )
    assert usage("alice", 2, stored, Limits(), NOON).active == 6
    fresh = usage("bob", 0, None, Limits(), NOON)
    assert (fresh.running, fresh.waiting, fresh.created_today, fresh.max_running) == (0, 0, 0, 10)


@given(created_today=st.integers(0, 5000), max_daily=st.integers(0, 5000))
def test_one_more_job_today_is_allowed_only_below_the_daily_limit(
    created_today: int, max_daily: int
) -> None:
    assert refuses(lambda: check_daily(created_today, max_daily, NOON)) is (
        created_today >= max_daily
    )


@pytest.mark.parametrize(
    ("now", "retry_after"),
    [
        (NOON, 12 * 3600),
        (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), 24 * 3600),
        (datetime(2026, 3, 1, 23, 59, 59, 500_000, tzinfo=UTC), 1),
        (datetime(2026, 3, 1, 23, 59, 59, 999_999, tzinfo=UTC), 1),
        (datetime(2026, 3, 1, 23, 59, 58, 999_500, tzinfo=UTC), 2),
        (datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC), 2),
        (datetime(2026, 3, 1, 23, 30, tzinfo=PARIS), 2 * 3600 + 30 * 60),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), 3600),
    ],
    ids=[
        "noon",
        "midnight",
        "half-a-second-left",
        "a-microsecond-left",
        "a-second-and-half-a-millisecond-left",
        "two-seconds-left",
        "evening-in-paris",
        "new-years-eve",
    ],
)
def test_the_daily_limit_refuses_until_the_next_utc_midnight(
    now: datetime, retry_after: int
) -> None:
    with pytest.raises(RateLimited) as caught:
        check_daily(1000, 1000, now)
    assert (caught.value.limit, caught.value.allowed) == ("daily", 1000)
    assert caught.value.retry_after == retry_after
    assert f"{retry_after} seconds" in str(caught.value)


@given(now=st.datetimes(max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
@example(now=datetime(2026, 3, 1, 23, 59, 58, 999_500, tzinfo=UTC))
def test_retry_after_is_the_wait_until_midnight_in_whole_seconds_rounded_up(now: datetime) -> None:
    with pytest.raises(RateLimited) as caught:
        check_daily(1, 1, now)
    wait = (next_midnight(now) - now).total_seconds()
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1
    assert caught.value.retry_after - 1 < wait <= caught.value.retry_after


@pytest.mark.parametrize(
    ("now", "midnight"),
    [
        (NOON, datetime(2026, 3, 2, tzinfo=UTC)),
        (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        (datetime(2026, 2, 28, 23, 59, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(2026, 12, 31, 18, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 3, 2, 1, 0, tzinfo=PARIS), datetime(2026, 3, 2, tzinfo=UTC)),
    ],
)
def test_next_midnight_is_the_next_utc_midnight(now: datetime, midnight: datetime) -> None:
    assert next_midnight(now) == midnight
    assert next_midnight(now).utcoffset() == timedelta(0)


@given(now=st.datetimes(max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_next_midnight_is_within_a_day_after_now(now: datetime) -> None:
    midnight = next_midnight(now)
    assert now < midnight <= now + timedelta(days=1)
    assert (midnight.hour, midnight.minute, midnight.second, midnight.microsecond) == (0, 0, 0, 0)


def test_the_daily_count_is_keyed_by_the_utc_day() -> None:
    assert usage_day(NOON) == "2026-03-01"
    assert usage_day(datetime(2026, 3, 2, 1, 0, tzinfo=PARIS)) == "2026-03-01"


@pytest.mark.parametrize(
    ("attempts_made", "nominal"),
    [(0, 5.0), (1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (10, 2560.0), (11, 3600.0)],
)
def test_the_backoff_doubles_with_every_attempt_up_to_the_cap(
    attempts_made: int, nominal: float
) -> None:
    limits = Limits()
    assert retry_backoff(limits, attempts_made, FixedDraw(0.0)) == nominal / 2
    assert retry_backoff(limits, attempts_made, FixedDraw(0.5)) == nominal * 0.75
    assert retry_backoff(limits, attempts_made, FixedDraw(1.0)) == nominal


@given(
    attempts_made=st.integers(0, 1000),
    base=st.floats(0.001, 1000),
    cap=st.floats(0.001, 100_000),
    seed=st.integers(),
)
def test_the_backoff_is_always_between_half_and_all_of_the_nominal_delay(
    attempts_made: int, base: float, cap: float, seed: int
) -> None:
    limits = Limits(retry_backoff_seconds=base, retry_backoff_max_seconds=cap)
    doublings = max(0, attempts_made - 1)
    # Past 64 doublings every delay in this range is capped anyway.
    nominal = cap if doublings > 64 else min(cap, base * 2.0**doublings)
    delay = retry_backoff(limits, attempts_made, random.Random(seed))
    assert nominal / 2 <= delay <= nominal
    assert delay <= cap


@pytest.mark.parametrize("attempts_made", [1024, 1025, 5000, 1_000_000])
def test_the_backoff_stays_at_the_cap_however_many_attempts_were_made(attempts_made: int) -> None:
    # Limits.max_attempts has no upper bound, so a job may fail this many times.
    delay = retry_backoff(Limits(), attempts_made, FixedDraw(1.0))
    assert delay == Limits().retry_backoff_max_seconds


def test_the_backoff_uses_the_module_random_source_by_default() -> None:
    delays = {retry_backoff(Limits(), 3) for _ in range(50)}
    assert all(10.0 <= delay <= 20.0 for delay in delays)
    assert len(delays) > 1

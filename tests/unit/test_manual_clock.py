"""ManualClock: a clock that stands still until a test moves it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobdesk.testing import ManualClock

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_clock_stands_still_until_moved() -> None:
    clock = ManualClock(START)
    assert clock() == START
    assert clock() == START


def test_without_a_start_the_clock_starts_at_the_current_utc_time() -> None:
    before = datetime.now(UTC)
    clock = ManualClock()
    after = datetime.now(UTC)
    assert before <= clock() <= after
    assert clock().utcoffset() == timedelta(0)


def test_a_start_in_another_timezone_is_kept_as_the_same_instant() -> None:
    start = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert ManualClock(start)() == START


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))


def test_advance_moves_the_clock_and_returns_the_new_time() -> None:
    clock = ManualClock(START)
    assert clock.advance(seconds=301) == START + timedelta(seconds=301)
    assert clock() == START + timedelta(seconds=301)


def test_advance_takes_any_timedelta_keyword_and_adds_up() -> None:
    clock = ManualClock(START)
    clock.advance(hours=1, minutes=2)
    clock.advance(1.5, milliseconds=500)
    clock.advance(days=1)
    assert clock() == START + timedelta(days=1, hours=1, minutes=2, seconds=2)


def test_advance_without_arguments_leaves_the_clock_where_it_is() -> None:
    clock = ManualClock(START)
    assert clock.advance() == START


def test_set_jumps_to_a_time_even_backwards() -> None:
    clock = ManualClock(START)
    clock.set(START + timedelta(days=30))
    assert clock() == START + timedelta(days=30)
    clock.set(START - timedelta(days=1))
    assert clock() == START - timedelta(days=1)


def test_setting_a_naive_time_is_refused_and_leaves_the_clock_alone() -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 6, 1))
    assert clock() == START


def test_advances_from_many_threads_all_count() -> None:
    clock = ManualClock(START)

    def tick(_: int) -> None:
        for _ in range(1_000):
            clock.advance(seconds=1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(tick, range(8)))
    assert clock() == START + timedelta(seconds=8_000)

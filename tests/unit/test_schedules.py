"""The schedule rule: cron expressions, time zones, next ticks and missed ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobdesk import schedules
from jobdesk.errors import InvalidInput
from jobdesk.schedules import Missed, NewSchedule, Schedule

NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def a_schedule(
    cron: str = "* * * * *", *, missed: Missed = Missed.ONCE, timezone: str = "UTC"
) -> Schedule:
    spec = NewSchedule(
        name="report",
        cron=cron,
        timezone=timezone,
        missed=missed,
        type="report",
        input={"n": 1},
        input_json='{"n":1}',
        user_id="u1",
    )
    return schedules.create(spec, NOW)


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("0 0 31 2 *", "day-of-month"),
        ("* * *", "five fields"),
        ("* * * * * *", "five fields"),
        ("@sometimes", "unknown alias"),
        ("", "cron expression"),
        ("x" * 201, "cron expression"),
    ],
)
def test_a_bad_cron_expression_is_refused_naming_the_field(cron: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        schedules.cron_expression(cron)
    assert refused.value.field == "cron"
    assert words.lower() in refused.value.rule.lower()


def test_a_cron_expression_is_normalised_and_aliases_are_kept() -> None:
    assert schedules.cron_expression("  */15   9-17 * * 1-5 ") == "*/15 9-17 * * 1-5"
    assert schedules.cron_expression("@daily") == "@daily"
    assert schedules.next_tick("@hourly", "UTC", NOW) == datetime(2026, 3, 1, 13, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", 7, None])
def test_an_unknown_time_zone_is_refused_naming_the_field(zone: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        schedules.time_zone(zone)
    assert refused.value.field == "timezone"


def test_other_fields_are_checked_too() -> None:
    with pytest.raises(InvalidInput, match="missed"):
        schedules.missed_policy("twice")
    with pytest.raises(InvalidInput, match="name"):
        schedules.schedule_name("has spaces")
    assert schedules.missed_policy("skip") is Missed.SKIP


def test_ticks_are_read_in_the_schedules_time_zone_across_daylight_saving() -> None:
    winter = schedules.next_tick("0 9 * * *", "Europe/Paris", NOW)
    summer = schedules.next_tick("0 9 * * *", "Europe/Paris", datetime(2026, 7, 1, tzinfo=UTC))
    assert winter == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert summer == datetime(2026, 7, 1, 7, tzinfo=UTC)
    assert winter.tzinfo is UTC


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_the_next_tick_is_always_strictly_later(naive: datetime) -> None:
    after = naive.replace(tzinfo=UTC)
    tick = schedules.next_tick("*/7 * * * *", "America/New_York", after)
    assert after < tick <= after + timedelta(hours=2)


def test_a_new_schedules_first_tick_is_the_first_after_its_creation() -> None:
    schedule = a_schedule()
    assert schedule.next_run_at == datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
    assert not schedules.is_due(schedule, NOW)
    assert schedules.is_due(schedule, schedule.next_run_at)
    assert not schedules.is_due(schedules.pause(schedule, NOW), schedule.next_run_at)


def test_an_on_time_tick_makes_a_job_and_moves_to_the_next_tick() -> None:
    schedule = a_schedule(missed=Missed.SKIP)
    now = schedule.next_run_at + timedelta(seconds=5)
    firing = schedules.fire(schedule, now)
    assert firing.run
    assert firing.tick == schedule.next_run_at
    assert firing.next_run_at == schedule.next_run_at + timedelta(minutes=1)
    after = schedules.fired(schedule, firing, now, job_id="j1")
    assert (after.last_job_id, after.last_tick_at, after.last_error) == ("j1", firing.tick, None)


def test_missed_once_makes_one_job_for_a_whole_stretch_of_missed_ticks() -> None:
    schedule = a_schedule(missed=Missed.ONCE)
    now = schedule.next_run_at + timedelta(hours=5, seconds=1)
    firing = schedules.fire(schedule, now)
    assert firing.run
    assert firing.tick == schedule.next_run_at
    assert firing.next_run_at > now
    assert firing.next_run_at - now <= timedelta(minutes=1)


def test_missed_skip_makes_no_job_for_a_late_tick_and_says_why() -> None:
    schedule = a_schedule(missed=Missed.SKIP)
    now = schedule.next_run_at + schedules.ON_TIME + timedelta(seconds=1)
    firing = schedules.fire(schedule, now)
    assert not firing.run
    assert firing.next_run_at > now
    after = schedules.fired(schedule, firing, now)
    assert after.last_job_id is None
    assert after.last_error is not None
    assert "skip" in after.last_error


def test_a_schedule_is_never_fired_before_its_tick() -> None:
    schedule = a_schedule()
    with pytest.raises(ValueError, match="not due"):
        schedules.fire(schedule, NOW)


def test_resuming_starts_from_the_next_tick_and_pausing_twice_changes_nothing() -> None:
    schedule = a_schedule()
    paused = schedules.pause(schedule, NOW)
    assert schedules.pause(paused, NOW) is paused
    assert schedules.resume(schedule, NOW) is schedule
    later = NOW + timedelta(days=3, seconds=10)
    resumed = schedules.resume(paused, later)
    assert not resumed.paused
    assert resumed.next_run_at == datetime(2026, 3, 4, 12, 1, tzinfo=UTC)


def test_the_job_of_a_tick_is_keyed_by_the_schedule_and_the_tick() -> None:
    schedule = a_schedule()
    firing = schedules.fire(schedule, schedule.next_run_at)
    job = schedules.job_for(schedule, firing, max_attempts=3)
    assert job.idempotency_key == "schedule:report@2026-03-01T12:01:00Z"
    assert (job.user_id, job.type, job.input, job.max_attempts) == ("u1", "report", {"n": 1}, 3)
    assert job.input_json == '{"n":1}'


def test_daylight_saving_changes_neither_lose_nor_double_a_daily_tick() -> None:
    spring = schedules.next_tick(
        "30 2 * * *", "Europe/Paris", datetime(2026, 3, 28, 12, tzinfo=UTC)
    )
    assert spring == datetime(2026, 3, 29, 1, tzinfo=UTC)  # 03:00, the first time after 02:30
    autumn = schedules.next_tick(
        "30 2 * * *", "Europe/Paris", datetime(2026, 10, 24, 12, tzinfo=UTC)
    )
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30
    following = schedules.next_tick("30 2 * * *", "Europe/Paris", autumn)
    assert following == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # not the second 02:30

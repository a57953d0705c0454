"""Schedules on every store: one job per tick, missed ticks by policy, bad input refused
with nothing written, pause and resume, the owner's limits, racing runners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobdesk import JobDesk, Missed, schedules
from jobdesk.errors import InvalidInput, ScheduleNotFound
from jobdesk.testing import ManualClock
from tests.conftest import OpenDesk

#: an input nested deeper than the limit (32)
DEEP: Any = 1
for _ in range(40):
    DEEP = [DEEP]


async def jobs_of(desk: JobDesk, user_id: str = "u1") -> list[Any]:
    page = await desk.get_user_jobs(user_id, limit=100)
    return list(reversed(page.items))


async def test_each_tick_makes_exactly_one_job_as_create_job_would(
    desk: JobDesk, clock: ManualClock
) -> None:
    made = await desk.schedule(
        "nightly", "*/10 * * * *", "report", {"depth": 2}, user_id="u1", project_id="p1"
    )
    assert made.next_run_at == datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
    assert await desk.run_due_schedules() == 0  # not yet due
    clock.set(made.next_run_at)
    assert await desk.run_due_schedules() == 1
    assert await desk.run_due_schedules() == 0  # the tick is done
    [job] = await jobs_of(desk)
    assert (job.type, job.input, job.project_id, job.status.value) == (
        "report",
        {"depth": 2},
        "p1",
        "pending",
    )
    assert job.idempotency_key == "schedule:nightly@2026-03-01T12:10:00Z"
    after = await desk.get_schedule("nightly")
    assert after.next_run_at == datetime(2026, 3, 1, 12, 20, tzinfo=UTC)
    assert (after.last_job_id, after.last_tick_at) == (job.id, made.next_run_at)


async def test_missed_once_makes_one_job_after_downtime_then_keeps_time(
    desk: JobDesk, clock: ManualClock
) -> None:
    await desk.schedule("often", "* * * * *", "report", {}, user_id="u1", missed="once")
    clock.advance(hours=3)
    assert await desk.run_due_schedules() == 1
    assert await desk.run_due_schedules() == 0
    after = await desk.get_schedule("often")
    assert after.next_run_at == datetime(2026, 3, 1, 15, 1, tzinfo=UTC)
    clock.set(after.next_run_at)
    assert await desk.run_due_schedules() == 1
    assert len(await jobs_of(desk)) == 2


async def test_missed_skip_drops_late_ticks_and_says_so(desk: JobDesk, clock: ManualClock) -> None:
    await desk.schedule("often", "* * * * *", "report", {}, user_id="u1", missed=Missed.SKIP)
    clock.advance(hours=3)
    assert await desk.run_due_schedules() == 0
    skipped = await desk.get_schedule("often")
    assert skipped.last_error is not None
    assert "skip" in skipped.last_error
    clock.set(skipped.next_run_at + timedelta(seconds=20))  # on time: runs
    assert await desk.run_due_schedules() == 1
    assert (await desk.get_schedule("often")).last_error is None


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"name": "two words"}, "name"),
        ({"type": "Not A Type"}, "type"),
        ({"input": DEEP}, "input"),
        ({"input": {"not json": {1, 2}}}, "input"),
        ({"user_id": ""}, "user_id"),
        ({"project_id": 5}, "project_id"),
        ({"missed": "always"}, "missed"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    desk: JobDesk, arguments: dict[str, Any], field: str
) -> None:
    given: dict[str, Any] = {
        "name": "nightly",
        "cron": "0 3 * * *",
        "type": "report",
        "input": {},
        "user_id": "u1",
    } | arguments
    with pytest.raises(InvalidInput) as refused:
        await desk.schedule(
            given.pop("name"), given.pop("cron"), given.pop("type"), given.pop("input"), **given
        )
    assert refused.value.field == field
    assert await desk.list_schedules() == []


async def test_a_duplicate_name_is_refused_and_the_first_schedule_is_kept(desk: JobDesk) -> None:
    first = await desk.schedule("nightly", "0 3 * * *", "report", {"v": 1}, user_id="u1")
    with pytest.raises(InvalidInput) as refused:
        await desk.schedule("nightly", "0 4 * * *", "other", {"v": 2}, user_id="u2")
    assert refused.value.field == "name"
    assert await desk.list_schedules() == [first]


async def test_registered_types_bind_schedules_too(open_desk: OpenDesk) -> None:
    async with open_desk(types=["report"]) as desk:
        with pytest.raises(InvalidInput) as refused:
            await desk.schedule("nightly", "0 3 * * *", "unknown", {}, user_id="u1")
        assert refused.value.field == "type"


async def test_schedules_are_listed_by_name_got_paused_resumed_and_deleted(
    desk: JobDesk, clock: ManualClock
) -> None:
    await desk.schedule("b", "0 * * * *", "report", {}, user_id="u1", timezone="Asia/Kolkata")
    await desk.schedule("a", "@daily", "report", {}, user_id="u1", timezone="Europe/Paris")
    listed = await desk.list_schedules()
    assert [s.name for s in listed] == ["a", "b"]
    # Midnight in Paris is 23:00 UTC in winter; Kolkata's hour starts at :30 UTC.
    assert listed[0].next_run_at == datetime(2026, 3, 1, 23, tzinfo=UTC)
    assert listed[1].next_run_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)

    paused = await desk.pause_schedule("b")
    assert paused.paused
    clock.advance(days=2)
    assert await desk.run_due_schedules() == 1  # "a" only (once, for its missed days)
    resumed = await desk.resume_schedule("b")
    assert not resumed.paused
    assert resumed.next_run_at == datetime(2026, 3, 3, 12, 30, tzinfo=UTC)

    await desk.delete_schedule("b")
    assert [s.name for s in await desk.list_schedules()] == ["a"]
    for operation in (
        desk.get_schedule,
        desk.delete_schedule,
        desk.pause_schedule,
        desk.resume_schedule,
    ):
        with pytest.raises(ScheduleNotFound):
            await operation("b")


async def test_a_tick_the_owners_limits_refuse_makes_no_job_and_is_recorded(
    desk: JobDesk, clock: ManualClock
) -> None:
    await desk.set_user_limits("u1", max_waiting=1)
    await desk.create_job("u1", "report", {})
    await desk.schedule("nightly", "* * * * *", "report", {}, user_id="u1")
    clock.advance(minutes=1)
    assert await desk.run_due_schedules() == 0
    refused = await desk.get_schedule("nightly")
    assert refused.last_error is not None
    assert "pending jobs" in refused.last_error
    assert refused.next_run_at == datetime(2026, 3, 1, 12, 2, tzinfo=UTC)
    assert len(await jobs_of(desk)) == 1


async def test_a_job_already_made_for_a_tick_is_never_made_twice(
    desk: JobDesk, clock: ManualClock
) -> None:
    made = await desk.schedule("nightly", "* * * * *", "report", {}, user_id="u1")
    # A job holding the tick's key exists (as if a runner had died after creating it).
    key = schedules.tick_key("nightly", made.next_run_at)
    existing = await desk.create_job("u1", "report", {}, idempotency_key=key)
    clock.set(made.next_run_at)
    assert await desk.run_due_schedules() == 0
    assert (await desk.get_schedule("nightly")).last_job_id == existing.id
    assert len(await jobs_of(desk)) == 1


async def test_the_stores_due_query_agrees_with_the_python_rule(
    desk: JobDesk, clock: ManualClock
) -> None:
    """``due_schedules`` (and SQLite's ``any_due``) are twins of ``schedules.is_due``."""
    for minute in (0, 1, 2):
        await desk.schedule(f"at-{minute}", f"{minute + 1} * * * *", "report", {}, user_id="u1")
    await desk.schedule("paused", "1 * * * *", "report", {}, user_id="u1")
    await desk.pause_schedule("paused")
    clock.set(datetime(2026, 3, 1, 12, 2, tzinfo=UTC))  # exactly at-1's tick
    now = await desk.now()
    expected = {s.name for s in await desk.list_schedules() if schedules.is_due(s, now)}
    assert expected == {"at-0", "at-1"}
    assert await desk.run_due_schedules() == len(expected)
    made = {job.idempotency_key.split("@")[0] for job in await jobs_of(desk)}
    assert made == {f"schedule:{name}" for name in expected}


async def test_racing_runners_make_one_job_per_tick(
    open_desk: OpenDesk, desk: JobDesk, clock: ManualClock
) -> None:
    for index in range(5):
        await desk.schedule(f"s{index}", "* * * * *", "report", {}, user_id=f"u{index}")
    async with open_desk() as second, open_desk() as third:
        runners = (desk, second, third)
        for _ in range(20):
            clock.advance(minutes=1)
            made = await asyncio.gather(*(r.run_due_schedules() for r in runners for _ in "ab"))
            assert sum(made) == 5
    for index in range(5):
        keys = [job.idempotency_key for job in await jobs_of(desk, f"u{index}")]
        assert len(keys) == len(set(keys)) == 20

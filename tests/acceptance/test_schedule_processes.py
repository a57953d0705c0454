"""One job per tick across OS processes, a kill -9 and a restart, on a fast clock.

Four spawned processes fire due schedules in a loop (what ``jobdesk serve`` and
every worker on the database do each second), all reading one clock that the test
moves a minute at a time, through 1,000 ticks of an every-minute schedule. At tick
300 one runner is killed with SIGKILL, wherever it is (in a transaction, perhaps),
and at tick 600 a new one starts. Every tick must make exactly one job: none twice
(the runners race for each one) and none lost (the killed runner's transaction, if
any, is undone, and another runner fires the tick).

The clock is shared memory, a float of seconds: each process's store reads it as
its time, so the test decides when each tick falls due. Waits are bounded by a
deadline that only fails the test; nothing here is timed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized

import pytest

from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.testing import ManualClock

RUNNERS = 4
TICKS = 1000
KILL_AT = 300
RESTART_AT = 600
START = datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC)
#: the longest one tick may wait for its job before the test fails (not a sleep)
DEADLINE_SECONDS = 60.0

pytestmark = pytest.mark.slow


def fire_until_stopped(url: str, now: Synchronized[float], stop: Synchronized[int]) -> None:
    """One runner process: fire due schedules, on the shared clock, until told to stop."""

    def clock() -> datetime:
        return datetime.fromtimestamp(now.value, UTC)

    with SyncJobDesk.open(url, clock=clock) as desk:
        while not stop.value:
            desk.run_due_schedules()
            time.sleep(0.001)  # let the other runners in; not part of any check


@pytest.fixture
def shared() -> Iterator[tuple[Synchronized[float], Synchronized[int]]]:
    context = multiprocessing.get_context("spawn")
    now = context.Value("d", START.timestamp(), lock=False)
    stop = context.Value("i", 0, lock=False)
    yield now, stop
    stop.value = 1


def test_four_processes_make_one_job_per_tick_through_a_kill_and_a_restart(
    store_url: str, shared: tuple[Synchronized[float], Synchronized[int]]
) -> None:
    now, stop = shared
    context = multiprocessing.get_context("spawn")
    with SyncJobDesk.open(store_url, clock=ManualClock(START)) as desk:
        desk.schedule("every-minute", "* * * * *", "report", {}, user_id="owner")
        desk.set_user_limits("owner", max_waiting=100_000, max_daily=100_000)
        runners = [
            context.Process(target=fire_until_stopped, args=(store_url, now, stop))
            for _ in range(RUNNERS)
        ]
        for runner in runners:
            runner.start()
        try:
            first_tick = START.replace(second=0) + timedelta(minutes=1)
            for index in range(TICKS):
                tick = first_tick + timedelta(minutes=index)
                if index == KILL_AT:
                    assert runners[0].pid is not None
                    os.kill(runners[0].pid, signal.SIGKILL)
                if index == RESTART_AT:
                    runners.append(
                        context.Process(target=fire_until_stopped, args=(store_url, now, stop))
                    )
                    runners[-1].start()
                now.value = tick.timestamp()
                deadline = time.monotonic() + DEADLINE_SECONDS
                while desk.get_schedule("every-minute").next_run_at <= tick:
                    assert time.monotonic() < deadline, f"tick {index} ({tick}) never fired"
                    time.sleep(0.0005)
        finally:
            stop.value = 1
            for runner in runners:
                runner.join(timeout=30)
        assert runners[0].exitcode == -signal.SIGKILL
        assert all(runner.exitcode == 0 for runner in runners[1:])

        keys: list[str] = []
        cursor = None
        while True:
            page = desk.get_user_jobs("owner", limit=100, cursor=cursor)
            keys.extend(job.idempotency_key or "" for job in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = {
            f"schedule:every-minute@{(first_tick + timedelta(minutes=index)):%Y-%m-%dT%H:%M:%SZ}"
            for index in range(TICKS)
        }
        assert len(keys) == TICKS
        assert set(keys) == expected

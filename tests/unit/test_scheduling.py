"""The fair-scheduling rule, without a store: rates, clocks, the claim's plan, and
why a pending job waits."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobdesk.errors import InvalidInput
from jobdesk.models import Job, JobStatus, WaitReason
from jobdesk.scheduling import (
    MAX_RATE_COUNT,
    QueuedUser,
    Rate,
    TypeGate,
    TypeLimits,
    WaitFacts,
    candidates,
    plan,
    user_order_key,
    vtime_after_start,
    vtime_on_arrival,
    why_waiting,
)
from tests.unit.builders import ERROR, NOW, job_in, pending_job

SECOND = timedelta(seconds=1)


def job(user_id: str, number: int, **changes: Any) -> Job:
    """A pending job of ``user_id``; a larger ``number`` is a younger job."""
    return pending_job(id=f"{user_id}-{number:08d}", user_id=user_id, **changes)


def user(
    user_id: str,
    jobs: int | list[Job] = 0,
    *,
    vtime: float = 0.0,
    weight: float = 1.0,
    running: int = 0,
    max_running: int = 1_000_000,
    job_type: str = "character_extraction",
) -> QueuedUser:
    """A waiting user with ``jobs`` pending jobs (a count, or the jobs themselves)."""
    queue = (
        [job(user_id, number, type=job_type) for number in range(jobs)]
        if isinstance(jobs, int)
        else sorted(jobs, key=user_order_key)
    )
    return QueuedUser(user_id, vtime, weight, running, max_running, queue)


def starts_by_user(jobs: list[Job]) -> Counter[str]:
    return Counter(started.user_id for started in jobs)


# -- Rate.parse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("60/min", 60, 60.0),
        ("5/s", 5, 1.0),
        ("10/5min", 10, 300.0),
        ("1000/hour", 1000, 3600.0),
        ("200/day", 200, 86_400.0),
        ("1/second", 1, 1.0),
        (" 3 / 2 h ", 3, 7200.0),
        ("7/MINUTES", 7, 60.0),
        (f"{MAX_RATE_COUNT}/day", MAX_RATE_COUNT, 86_400.0),
    ],
)
def test_a_rate_reads_a_count_per_period(text: str, count: int, period: float) -> None:
    assert Rate.parse(text) == Rate(count, period)


@pytest.mark.parametrize(
    "text",
    [
        "0/min",
        "5/fortnight",
        "abc",
        "",
        "1/0s",
        "-1/min",
        "1.5/min",
        "60",
        "/min",
        "60/",
        f"{MAX_RATE_COUNT + 1}/day",
        "99999999/s",
        "1/2day",
        "1/25hour",
    ],
)
def test_a_bad_rate_is_refused_naming_the_rate(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Rate.parse(text)
    assert caught.value.field == "rate"
    assert "rate" in str(caught.value)


@pytest.mark.parametrize("value", [None, 60, 1.5, ["60/min"], b"60/min"])
def test_a_rate_must_be_text(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        Rate.parse(value)
    assert caught.value.field == "rate"


def test_a_rate_names_the_field_it_was_given_for() -> None:
    with pytest.raises(InvalidInput) as caught:
        Rate.parse("nonsense", field="limits.rate")
    assert caught.value.field == "limits.rate"


@pytest.mark.parametrize("text", ["60/min", "5/s", "10/5min", "1000/hour", "200/day", "3/2h"])
def test_a_rate_reads_back_what_it_writes(text: str) -> None:
    rate = Rate.parse(text)
    assert Rate.parse(str(rate)) == rate


def test_a_rate_spreads_its_starts_evenly() -> None:
    assert Rate.parse("60/min").interval == SECOND
    assert Rate.parse("5/s").interval == timedelta(milliseconds=200)
    assert Rate.parse("10/5min").interval == 30 * SECOND


# -- Rate.next_start_after: pacing -------------------------------------------------------


def test_the_first_start_of_a_rate_opens_the_next_one_an_interval_later() -> None:
    rate = Rate.parse("60/min")
    assert rate.next_start_after(None, NOW) == NOW + SECOND
    # A gate that opened long ago does not bank starts: the next one is after now.
    assert rate.next_start_after(NOW - timedelta(hours=1), NOW) == NOW + SECOND
    # A gate still closed (a start by id past it) pushes the next start further.
    assert rate.next_start_after(NOW + 5 * SECOND, NOW) == NOW + 6 * SECOND


@given(
    count=st.integers(1, 20),
    period=st.sampled_from([1, 2, 5, 60, 3600]),
    attempts=st.lists(st.integers(0, 3_000_000), min_size=1, max_size=200),
)
def test_no_window_of_the_period_holds_more_than_count_starts(
    count: int, period: int, attempts: list[int]
) -> None:
    """Claims arrive at any times (microseconds apart); each starts only when the gate is
    open. However they arrive, no window of one period holds more than ``count``."""
    rate = Rate(count, float(period))
    gate = TypeGate(TypeLimits("t", rate=rate), running=0)
    starts: list[datetime] = []
    now = NOW
    for gap in attempts:
        now += timedelta(microseconds=gap)
        if gate.open(now):
            starts.append(now)
            gate.started(now)
    window = timedelta(seconds=period)
    for index, first in enumerate(starts):
        inside = [start for start in starts[index:] if start < first + window]
        assert len(inside) <= count, (rate, starts)


@pytest.mark.parametrize(
    "text",
    [
        "60/min",
        "5/s",
        "4/s",
        "3/s",  # 1/3 s rounded to the nearest microsecond would fit a fourth start
        "7/s",
    ],
)
def test_claims_at_the_instant_the_gate_opens_never_overrun_the_rate(text: str) -> None:
    """The worst case for pacing: a claim at every instant the gate opens."""
    rate = Rate.parse(text)
    gate = TypeGate(TypeLimits("t", rate=rate), running=0)
    starts = [NOW]
    gate.started(NOW)
    for _ in range(rate.count):
        assert gate.next_start_at is not None
        starts.append(gate.next_start_at)
        gate.started(gate.next_start_at)
    # count + 1 starts must span at least the whole period
    assert starts[-1] - starts[0] >= timedelta(seconds=rate.period_seconds)


def test_a_rate_starts_its_whole_count_in_a_period_when_claims_keep_coming() -> None:
    rate = Rate.parse("60/min")
    gate = TypeGate(TypeLimits("t", rate=rate), running=0)
    started = 0
    for tick in range(600):  # a claim every 100 ms for a minute
        now = NOW + tick * timedelta(milliseconds=100)
        if gate.open(now):
            gate.started(now)
            started += 1
    assert started == 60


# -- clocks ------------------------------------------------------------------------------


def test_a_start_moves_a_users_clock_by_one_over_their_weight() -> None:
    assert vtime_after_start(0.0, 1.0) == 1.0
    assert vtime_after_start(2.0, 4.0) == 2.25
    assert vtime_after_start(1.0, 0.5) == 3.0


@pytest.mark.parametrize(
    ("vtime", "floor", "arrives_at"),
    [
        (5.0, None, 5.0),  # nobody else waits: the clock stays
        (2.0, 7.5, 7.5),  # an idle user comes back level with those waiting
        (9.0, 7.5, 9.0),  # a user who used more than their share keeps their clock
        (7.5, 7.5, 7.5),
    ],
)
def test_an_arriving_user_comes_back_at_the_floor_never_below_their_own_clock(
    vtime: float, floor: float | None, arrives_at: float
) -> None:
    assert vtime_on_arrival(vtime, floor) == arrives_at


@given(vtime=st.floats(0, 1e9), floor=st.none() | st.floats(0, 1e9))
def test_arrival_never_moves_a_clock_back(vtime: float, floor: float | None) -> None:
    arrived = vtime_on_arrival(vtime, floor)
    assert arrived >= vtime
    assert floor is None or arrived >= floor


# -- plan: the claim's order -------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "ratio"),
    [((3.0, 1.0), 3.0), ((1.0, 1.0), 1.0), ((2.0, 1.0), 2.0), ((1.0, 4.0), 0.25)],
)
def test_users_are_started_in_proportion_to_their_weights(
    weights: tuple[float, float], ratio: float
) -> None:
    heavy, light = user("alice", 10_000, weight=weights[0]), user("bob", 10_000, weight=weights[1])
    started = starts_by_user(plan([heavy, light], limit=10_000, now=NOW))
    assert sum(started.values()) == 10_000
    assert started["alice"] / started["bob"] == pytest.approx(ratio, rel=0.05)


def test_weights_hold_over_many_small_claims_too() -> None:
    alice, bob = user("alice", 5000, weight=3.0), user("bob", 5000, weight=1.0)
    started: Counter[str] = Counter()
    for _ in range(2000):
        started += starts_by_user(plan([alice, bob], limit=2, now=NOW))
    assert started["alice"] / started["bob"] == pytest.approx(3.0, rel=0.05)


def test_the_user_furthest_behind_starts_first_and_ties_go_by_user_id() -> None:
    order = plan(
        [user("carol", 1, vtime=2.0), user("bob", 1, vtime=1.0), user("alice", 1, vtime=1.0)],
        limit=3,
        now=NOW,
    )
    assert [started.user_id for started in order] == ["alice", "bob", "carol"]


def test_a_users_own_jobs_go_by_priority_then_age() -> None:
    jobs = [
        job("alice", 1, priority=0),
        job("alice", 2, priority=5),
        job("alice", 3, priority=5),
        job("alice", 4, priority=-1),
    ]
    order = plan([user("alice", jobs)], limit=4, now=NOW)
    assert [started.id for started in order] == [
        "alice-00000002",
        "alice-00000003",
        "alice-00000001",
        "alice-00000004",
    ]


def test_priority_never_lets_one_user_jump_ahead_of_another() -> None:
    greedy = user("alice", [job("alice", number, priority=1000) for number in range(4)])
    modest = user("bob", [job("bob", number, priority=-1000) for number in range(4)])
    order = plan([greedy, modest], limit=8, now=NOW)
    assert [started.user_id for started in order] == ["alice", "bob"] * 4


def test_a_user_at_their_running_cap_is_passed_over() -> None:
    capped = user("alice", 100, running=3, max_running=3)
    other = user("bob", 2, vtime=50.0)
    assert starts_by_user(plan([capped, other], limit=10, now=NOW)) == {"bob": 2}


def test_a_user_below_their_cap_starts_only_up_to_it() -> None:
    started = plan([user("alice", 100, running=1, max_running=3)], limit=10, now=NOW)
    assert len(started) == 2


@given(cap=st.integers(1, 30), jobs=st.integers(0, 60), limit=st.integers(1, 100))
def test_a_lone_user_gets_every_start_up_to_their_cap(cap: int, jobs: int, limit: int) -> None:
    """Work-conserving: nobody else waits, so the caps are the only brake."""
    started = plan([user("alice", jobs, max_running=cap)], limit=limit, now=NOW)
    assert len(started) == min(cap, jobs, limit)


def test_a_capped_users_backlog_never_blocks_another_user() -> None:
    heavy = user("alice", 10_000, running=10, max_running=10)
    light = user("bob", 1, vtime=1e6)
    assert [started.user_id for started in plan([heavy, light], limit=1, now=NOW)] == ["bob"]


def test_jobs_not_yet_due_wait_and_the_user_starts_their_due_ones() -> None:
    jobs = [job("alice", 1, run_at=NOW + SECOND, priority=9), job("alice", 2)]
    assert [started.id for started in plan([user("alice", jobs)], limit=2, now=NOW)] == [
        "alice-00000002"
    ]


def test_a_worker_starts_only_the_types_it_may_run() -> None:
    jobs = [job("alice", 1, type="render"), job("alice", 2, type="transcode")]
    started = plan(
        [user("alice", jobs)], limit=2, now=NOW, allowed=lambda job: job.type == "transcode"
    )
    assert [started.type for started in started] == ["transcode"]


def test_a_type_pool_holds_its_jobs_and_lets_other_types_start() -> None:
    gates = {"render": TypeGate(TypeLimits("render", max_running=2), running=1)}
    jobs = [job("alice", number, type="render") for number in range(5)]
    jobs.append(job("alice", 9, type="transcode"))
    started = plan(
        [user("alice", jobs), user("bob", 3, job_type="render")], limit=10, now=NOW, gates=gates
    )
    assert Counter(started.type for started in started) == {"render": 1, "transcode": 1}
    assert gates["render"].running == 2


def test_a_type_rate_paces_its_starts_within_one_claim() -> None:
    gates = {"render": TypeGate(TypeLimits("render", rate=Rate.parse("60/min")), running=0)}
    started = plan([user("alice", 10, job_type="render")], limit=10, now=NOW, gates=gates)
    assert len(started) == 1
    assert gates["render"].next_start_at == NOW + SECOND
    later = plan([user("alice", 10, job_type="render")], limit=10, now=NOW + SECOND, gates=gates)
    assert len(later) == 1


def test_plan_moves_the_clocks_and_running_counts_it_used() -> None:
    alice = user("alice", 3, weight=2.0, vtime=1.0)
    plan([alice], limit=2, now=NOW)
    assert (alice.vtime, alice.running, len(alice.jobs)) == (2.0, 2, 1)


@st.composite
def queued_users(draw: st.DrawFn) -> list[QueuedUser]:
    users = []
    for index in range(draw(st.integers(0, 6))):
        name = f"user{index}"
        jobs = [
            job(
                name,
                number,
                priority=draw(st.integers(-2, 2)),
                run_at=NOW + draw(st.sampled_from([-SECOND, timedelta(0), SECOND])),
                type=draw(st.sampled_from(["render", "transcode"])),
            )
            for number in range(draw(st.integers(0, 8)))
        ]
        cap = draw(st.integers(1, 5))
        users.append(
            user(
                name,
                jobs,
                vtime=draw(st.floats(0, 10)),
                weight=draw(st.sampled_from([0.5, 1.0, 3.0])),
                running=draw(st.integers(0, cap)),
                max_running=cap,
            )
        )
    return users


@given(users=queued_users(), limit=st.integers(1, 40), pool=st.none() | st.integers(0, 4))
def test_plan_holds_every_limit_and_leaves_no_startable_job_behind(
    users: list[QueuedUser], limit: int, pool: int | None
) -> None:
    before = {
        queued.user_id: dataclasses.replace(queued, jobs=list(queued.jobs)) for queued in users
    }
    gates = {} if pool is None else {"render": TypeGate(TypeLimits("render", max_running=pool), 0)}
    started = plan(users, limit=limit, now=NOW, gates=gates)
    assert len(started) <= limit
    assert len({started_job.id for started_job in started}) == len(started)
    for started_job in started:
        assert started_job.run_at <= NOW
    counts = starts_by_user(started)
    for queued in users:
        original = before[queued.user_id]
        assert original.running + counts[queued.user_id] <= original.max_running
        mine = [started_job for started_job in started if started_job.user_id == queued.user_id]
        assert mine == sorted(mine, key=user_order_key)
    if pool is not None:
        assert Counter(started_job.type for started_job in started)["render"] <= pool
    if len(started) < limit:
        # Work-conserving: whatever is left could not start under the limits.
        for queued in users:
            if queued.running >= queued.max_running:
                continue
            for left in queued.jobs:
                assert left.run_at > NOW or (
                    left.type == "render" and not gates["render"].open(NOW)
                )


# -- candidates: the users a claim plans over -------------------------------------------


def test_candidates_are_the_first_users_of_the_walk_who_could_start_something() -> None:
    walk = [
        user("capped", 5, running=2, max_running=2),
        user("later", [job("later", 1, run_at=NOW + SECOND)]),
        user("alice", 1),
        user("wrong-type", 1, job_type="render"),
        user("bob", 1),
        user("carol", 1),
    ]
    found = candidates(walk, limit=2, now=NOW, allowed=lambda job: job.type != "render")
    assert [queued.user_id for queued in found] == ["alice", "bob"]


def test_candidates_pass_over_a_type_whose_gate_is_shut() -> None:
    gates = {"render": TypeGate(TypeLimits("render", max_running=1), running=1)}
    walk = [user("alice", 3, job_type="render"), user("bob", 1)]
    assert [queued.user_id for queued in candidates(walk, limit=5, now=NOW, gates=gates)] == ["bob"]


def test_candidates_stop_reading_the_walk_once_they_have_enough() -> None:
    read: list[str] = []

    def walk() -> Any:
        for index in range(1000):
            read.append(f"user{index}")
            yield user(f"user{index}", 1)

    assert len(candidates(walk(), limit=3, now=NOW)) == 3
    assert len(read) <= 4


def test_the_plan_over_the_candidates_is_the_plan_over_everyone() -> None:
    everyone = [user(f"user{index}", 3, vtime=float(index % 4)) for index in range(20)]
    everyone[0].running, everyone[0].max_running = 2, 2
    everyone.sort(key=lambda queued: (queued.vtime, queued.user_id))
    copy = [dataclasses.replace(queued, jobs=list(queued.jobs)) for queued in everyone]
    limit = 5
    assert plan(candidates(everyone, limit=limit, now=NOW), limit=limit, now=NOW) == plan(
        copy, limit=limit, now=NOW
    )


# -- why_waiting -------------------------------------------------------------------------


def facts(
    *,
    now: datetime = NOW,
    running: int = 0,
    max_running: int = 10,
    gate: TypeGate | None = None,
    ahead: int | None = 0,
) -> WaitFacts:
    return WaitFacts(now, running, max_running, gate, ahead)


def test_a_job_created_for_later_is_scheduled_until_then() -> None:
    later = pending_job(run_at=NOW + timedelta(hours=1))
    waiting = why_waiting(later, facts(running=10))
    assert waiting is not None
    assert (waiting.reason, waiting.until) == (WaitReason.SCHEDULED, NOW + timedelta(hours=1))


def test_a_job_that_failed_waits_in_backoff_until_its_next_attempt() -> None:
    failed = pending_job(run_at=NOW + 10 * SECOND, error=ERROR)
    waiting = why_waiting(failed, facts())
    assert waiting is not None
    assert (waiting.reason, waiting.until) == (WaitReason.BACKOFF, NOW + 10 * SECOND)


def test_a_due_job_of_a_user_at_their_cap_waits_for_the_running_limit() -> None:
    waiting = why_waiting(pending_job(), facts(running=3, max_running=3))
    assert waiting is not None
    assert (waiting.reason, waiting.running, waiting.limit) == (
        WaitReason.USER_RUNNING_LIMIT,
        3,
        3,
    )


def test_a_due_job_of_a_full_pool_waits_for_the_pool() -> None:
    gate = TypeGate(TypeLimits("character_extraction", max_running=2), running=2)
    waiting = why_waiting(pending_job(), facts(gate=gate))
    assert waiting is not None
    assert (waiting.reason, waiting.running, waiting.limit) == (WaitReason.TYPE_POOL, 2, 2)


def test_a_due_job_of_a_spent_rate_waits_until_the_next_start() -> None:
    rate = TypeLimits("character_extraction", rate=Rate.parse("1/min"))
    gate = TypeGate(rate, running=0, next_start_at=NOW + 30 * SECOND)
    waiting = why_waiting(pending_job(), facts(gate=gate))
    assert waiting is not None
    assert (waiting.reason, waiting.until) == (WaitReason.TYPE_RATE, NOW + 30 * SECOND)


@pytest.mark.parametrize("ahead", [0, 7, None])
def test_a_job_that_could_start_is_queued_for_its_turn(ahead: int | None) -> None:
    open_gate = TypeGate(
        TypeLimits("character_extraction", max_running=5, rate=Rate.parse("1/min")),
        running=4,
        next_start_at=NOW,
    )
    waiting = why_waiting(pending_job(), facts(running=9, gate=open_gate, ahead=ahead))
    assert waiting is not None
    assert (waiting.reason, waiting.ahead) == (WaitReason.QUEUED, ahead)


def test_the_reasons_come_in_the_order_a_claim_meets_them() -> None:
    full = TypeGate(TypeLimits("character_extraction", max_running=1), running=1)
    later = pending_job(run_at=NOW + SECOND)
    scheduled = why_waiting(later, facts(running=10, gate=full))
    capped = why_waiting(pending_job(), facts(running=10, gate=full))
    assert scheduled is not None
    assert capped is not None
    assert (scheduled.reason, capped.reason) == (
        WaitReason.SCHEDULED,
        WaitReason.USER_RUNNING_LIMIT,
    )


@pytest.mark.parametrize(
    "status", [status for status in JobStatus if status is not JobStatus.PENDING]
)
def test_only_a_pending_job_waits(status: JobStatus) -> None:
    assert why_waiting(job_in(status), facts()) is None

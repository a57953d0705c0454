"""The checker on made-up histories: each rule fires on what it must, and only on that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.faults.checker import (
    CreateOp,
    Event,
    Execution,
    Fault,
    Observed,
    Report,
    StoredJob,
    check,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def job(job_id: str, status: str = "completed", *, attempt: int = 1, user: str = "u") -> StoredJob:
    result = {"attempt": attempt} if status == "completed" else None
    return StoredJob(job_id, user, status, attempt, f"key-{job_id}", result)


def events(*rows: tuple[str, str] | tuple[str, str, str]) -> list[Event]:
    """Events in order: (job, status) or (job, status, user), one second apart."""
    made = []
    for seq, row in enumerate(rows, start=1):
        user = row[2] if len(row) == 3 else "u"
        made.append(Event(seq, row[0], user, row[1], 1, T0 + timedelta(seconds=seq)))
    return made


def ok(job_id: str, user: str = "u") -> CreateOp:
    return CreateOp(f"key-{job_id}", user, "library", "ok", job_id=job_id)


def run(
    creates: list[CreateOp],
    jobs: list[StoredJob],
    history: list[Event],
    *,
    max_active: dict[str, int] | None = None,
    max_daily: dict[str, int] | None = None,
) -> Report:
    """The checker with user ``u`` limited to 2 active jobs and 100 a day, unless told."""
    return check(
        creates,
        [],
        Observed(jobs, history),
        max_active={"u": 2} if max_active is None else max_active,
        max_daily={"u": 100} if max_daily is None else max_daily,
    )


def test_a_clean_history_passes() -> None:
    report = run(
        [ok("a"), ok("b")],
        [job("a"), job("b", "cancelled")],
        events(("a", "pending"), ("b", "pending"), ("a", "processing"), ("a", "completed"),
               ("b", "cancelled")),
    )  # fmt: skip
    assert report.ok, report.summary()
    assert report.acknowledged == 2
    assert dict(report.terminal) == {"completed": 1, "cancelled": 1}


def test_an_acknowledged_job_that_is_missing_or_unfinished_is_lost() -> None:
    report = run([ok("a"), ok("b")], [job("b", "processing")], events(("b", "pending")))
    assert not report.ok
    assert [line.split(":")[0] for line in report.lost] == ["a", "b"]


def test_a_job_nobody_acknowledged_is_unexpected_unless_its_outcome_was_unknown() -> None:
    unknown = CreateOp("key-b", "u", "http", "unknown")
    report = run([ok("a"), unknown], [job("a"), job("b"), job("c")], [])
    assert [line.split(":")[0] for line in report.unexpected] == ["c"]
    assert report.recovered == 1  # b: unknown to its client, yet there
    assert report.unknown == 1


def test_two_terminal_transitions_without_a_retry_between_are_caught() -> None:
    report = run(
        [ok("a"), ok("b")],
        [job("a"), job("b")],
        events(("a", "pending"), ("a", "completed"), ("a", "completed"),
               ("b", "pending"), ("b", "failed"), ("b", "pending"), ("b", "completed")),
    )  # fmt: skip
    assert len(report.double_terminal) == 1
    assert report.double_terminal[0].startswith("a:")  # b was retried in between


def test_a_result_from_another_attempt_than_the_last_is_stale() -> None:
    stale = StoredJob("a", "u", "completed", 2, "key-a", {"attempt": 1})
    report = run([ok("a")], [stale], [])
    assert report.stale_results == ["a: completed at attempt 2 with the result of attempt 1"]


def test_the_active_limit_is_replayed_in_write_order() -> None:
    within = events(("a", "pending"), ("b", "pending"), ("a", "completed"), ("c", "pending"))
    assert run([ok("a"), ok("b"), ok("c")], [job("a"), job("b"), job("c")], within).ok
    over = events(("a", "pending"), ("b", "pending"), ("c", "pending"), ("a", "completed"))
    report = run([ok("a"), ok("b"), ok("c")], [job("a"), job("b"), job("c")], over)
    assert report.limit_violations == ["u: 3 active jobs (limit 2) at seq 3"]


def test_a_retried_job_counts_again_and_other_users_do_not_count() -> None:
    history = events(
        ("a", "pending"), ("a", "failed"), ("b", "pending"), ("x", "pending", "v"),
        ("y", "pending", "v"), ("a", "pending"), ("c", "pending"),
    )  # fmt: skip
    report = run([], [], history)
    assert report.limit_violations == ["u: 3 active jobs (limit 2) at seq 7"]


def test_the_daily_limit_counts_creations_per_day() -> None:
    history = events(*((f"j{n}", "pending") for n in range(4)))
    report = run([], [], history, max_active={}, max_daily={"u": 3})
    assert report.limit_violations == [f"u: more than 3 jobs created on {T0.date()}"]


def test_executions_beyond_one_per_job_are_counted_not_failed() -> None:
    executions = [Execution("a", 1, "w1"), Execution("a", 2, "w2"), Execution("b", 1, "w1")]
    report = check([ok("a"), ok("b")], executions, Observed([job("a", attempt=2), job("b")], []),
                   max_active={}, max_daily={})  # fmt: skip
    assert report.ok
    assert (report.executions, report.duplicate_executions) == (3, 1)


def test_recovery_is_when_a_faults_held_jobs_ended_or_when_the_queue_moved_again() -> None:
    history = events(("a", "pending"), ("a", "completed"), ("b", "pending"), ("b", "completed"))
    start = T0.timestamp()
    faults = [
        Fault("kill_worker", "w1", start + 1.5, start + 1.8, held=("b",)),
        Fault("kill_server", "serve", start, start + 1),
        Fault("kill_worker", "w2", start + 5, start + 6, held=("zzz",)),
    ]
    report = check([], [], Observed([], history), max_active={}, max_daily={}, faults=faults)
    assert report.recovery == [
        ("kill_worker", "w1", 2.5),  # b ended at +4
        ("kill_server", "serve", 2.0),  # a ended at +2, the first end after +1
        ("kill_worker", "w2", None),  # its job never ended
    ]

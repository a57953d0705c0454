"""The checker on made-up histories: each rule fires on what it must, and only on that."""

from __future__ import annotations

from collections.abc import Collection
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
START = T0.timestamp()
#: when made-up jobs end: after every made-up event
FINISHED = START + 100


def job(job_id: str, status: str = "completed", *, attempt: int = 1, user: str = "u") -> StoredJob:
    result = {"attempt": attempt} if status == "completed" else None
    finished = FINISHED if status in ("completed", "failed", "cancelled") else None
    return StoredJob(job_id, user, status, attempt, f"key-{job_id}", result, finished)


def events(*rows: tuple[str, str] | tuple[str, str, str]) -> list[Event]:
    """Events in order: (job, status) or (job, status, user), one second apart."""
    made = []
    for seq, row in enumerate(rows, start=1):
        user = row[2] if len(row) == 3 else "u"
        made.append(Event(seq, row[0], user, row[1], 1, T0 + timedelta(seconds=seq)))
    return made


def lifetime(job_id: str, *statuses: str) -> list[tuple[str, str]]:
    return [(job_id, status) for status in statuses]


def ok(job_id: str, user: str = "u", *, at: float = START) -> CreateOp:
    return CreateOp(f"key-{job_id}", user, "library", "ok", job_id, "", at, at)


def ran(jobs: list[StoredJob]) -> list[Execution]:
    """One execution of each completed job's final attempt, at the start."""
    return [Execution(j.id, j.attempt, "w", START) for j in jobs if j.status == "completed"]


def run(
    creates: list[CreateOp],
    jobs: list[StoredJob],
    history: list[Event],
    *,
    executions: list[Execution] | None = None,
    max_running: dict[str, int] | None = None,
    max_waiting: dict[str, int] | None = None,
    max_daily: dict[str, int] | None = None,
    retried: Collection[str] = (),
) -> Report:
    """The checker with user ``u`` limited to 2 jobs running, 2 waiting and 100 a day,
    unless told."""
    return check(
        creates,
        ran(jobs) if executions is None else executions,
        Observed(jobs, history),
        max_running={"u": 2} if max_running is None else max_running,
        max_waiting={"u": 2} if max_waiting is None else max_waiting,
        max_daily={"u": 100} if max_daily is None else max_daily,
        retried=retried,
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
    assert report.executions == 1


def test_an_acknowledged_job_that_is_missing_or_unfinished_is_lost() -> None:
    report = run([ok("a"), ok("b")], [job("b", "processing")], events(("b", "pending")))
    assert not report.ok
    assert [line.split(":")[0] for line in report.lost] == ["a", "b"]


def test_a_job_nobody_acknowledged_is_unexpected_unless_its_outcome_was_unknown() -> None:
    unknown = CreateOp("key-b", "u", "http", "unknown")
    history = events(
        *lifetime("a", "pending", "processing", "completed"),
        *lifetime("b", "pending", "processing", "completed"),
        *lifetime("c", "pending", "processing", "completed"),
    )
    report = run([ok("a"), unknown], [job("a"), job("b"), job("c")], history)
    assert report.unexpected == ["c: in the database, never acknowledged"]
    assert report.recovered == 1  # b: unknown to its client, yet there
    assert report.unknown == 1
    assert not report.lost


def test_a_job_of_unknown_outcome_that_is_there_but_never_ended_is_lost() -> None:
    unknown = CreateOp("key-b", "u", "http", "unknown")
    report = run([unknown], [job("b", "pending")], events(("b", "pending")))
    assert report.recovered == 1
    assert report.lost == ["b: created (its client never knew), still pending after the drain"]


def test_two_terminal_transitions_without_a_user_retry_between_are_caught() -> None:
    history = events(
        *lifetime("a", "pending", "processing", "completed", "completed"),
        *lifetime("b", "pending", "processing", "failed", "pending", "processing", "completed"),
    )
    report = run([ok("a"), ok("b")], [job("a"), job("b")], history, retried={"b"})
    assert report.double_terminal == ["a: completed (seq 4) after an earlier completed"]


def test_a_completed_job_sent_back_to_the_queue_without_a_retry_is_caught() -> None:
    history = events(
        *lifetime("a", "pending", "processing", "completed", "pending", "processing", "completed")
    )
    report = run([ok("a")], [job("a")], history)
    assert not report.ok
    assert report.double_terminal == ["a: completed (seq 6) after an earlier completed"]
    assert report.inconsistent_history == [
        "a: left completed for pending (seq 4) without a user retry"
    ]
    # Not even a user's retry revives a completed job.
    assert run([ok("a")], [job("a")], history, retried={"a"}).inconsistent_history


def test_a_failed_job_retried_by_its_user_may_end_again() -> None:
    history = events(
        *lifetime("a", "pending", "processing", "failed", "pending", "processing", "completed")
    )
    assert run([ok("a")], [job("a")], history, retried={"a"}).ok
    report = run([ok("a")], [job("a")], history)  # nobody retried it
    assert report.inconsistent_history == [
        "a: left failed for pending (seq 4) without a user retry"
    ]
    assert report.double_terminal == ["a: completed (seq 6) after an earlier failed"]


def test_a_completed_job_with_no_history_is_inconsistent() -> None:
    report = run([ok("a")], [job("a")], [])
    assert not report.ok
    assert report.inconsistent_history == ["a: completed, with no history at all"]


def test_a_history_must_begin_with_the_creation_and_end_in_the_stored_status() -> None:
    report = run([ok("a")], [job("a")], events(("a", "processing"), ("a", "completed")))
    assert report.inconsistent_history == ["a: its history begins processing, not with a creation"]
    report = run([ok("a")], [job("a")], events(("a", "pending"), ("a", "processing")))
    assert report.inconsistent_history == ["a: its history ends processing, the job is completed"]


def test_a_change_the_design_does_not_allow_is_inconsistent() -> None:
    report = run([ok("a")], [job("a")], events(("a", "pending"), ("a", "completed")))
    assert report.inconsistent_history == [
        "a: pending -> completed (seq 2) is not a transition of the design"
    ]


def test_history_of_a_job_the_jobs_table_does_not_hold_is_inconsistent() -> None:
    report = run([], [], events(("ghost", "pending")), max_running={}, max_waiting={})
    assert report.inconsistent_history == ["ghost: 1 events of a job the jobs table does not hold"]


def test_a_result_from_another_attempt_than_the_last_is_stale() -> None:
    stale = StoredJob("a", "u", "completed", 2, "key-a", {"attempt": 1}, FINISHED)
    report = run([ok("a")], [stale], events(*lifetime("a", "pending", "processing", "completed")))
    assert report.stale_results == ["a: completed at attempt 2 with the result of attempt 1"]


def test_the_running_cap_is_replayed_in_write_order() -> None:
    within = events(
        ("a", "pending"), ("b", "pending"), ("a", "processing"), ("b", "processing"),
        ("a", "completed"), ("c", "pending"), ("c", "processing"),
    )  # fmt: skip
    assert not run([ok("a"), ok("b"), ok("c")], [], within).limit_violations
    over = events(
        ("a", "pending"), ("b", "pending"), ("a", "processing"), ("b", "processing"),
        ("c", "pending"), ("c", "processing"), ("a", "completed"),
    )  # fmt: skip
    report = run([ok("a"), ok("b"), ok("c")], [], over)
    assert report.limit_violations == ["u: 3 jobs processing (max_running 2) at seq 6"]


def test_any_end_of_processing_frees_its_running_slot() -> None:
    history = events(
        ("a", "pending"), ("b", "pending"), ("c", "pending"), ("d", "pending", "v"),
        ("a", "processing"), ("b", "processing"), ("a", "pending"), ("b", "cancelled"),
        ("c", "processing"), ("a", "processing"), ("d", "processing", "v"),
    )  # fmt: skip
    assert not run([], [], history, max_waiting={}).limit_violations


def test_the_waiting_limit_is_judged_at_admission_only() -> None:
    # a and b wait; c's creation is a third pending job: refused by a store that works.
    over = events(("a", "pending"), ("b", "pending"), ("c", "pending"))
    report = run([], [], over, max_running={})
    assert report.limit_violations == ["u: admitted a job to 3 pending (max_waiting 2) at seq 3"]
    # A requeue is not admitted: c's failure puts it back beside a and b, past the limit.
    requeued = events(
        ("c", "pending"), ("c", "processing"), ("a", "pending"), ("b", "pending"), ("c", "pending"),
    )  # fmt: skip
    assert not run([], [], requeued, max_running={}).limit_violations


def test_a_retried_job_is_admitted_again_and_other_users_do_not_count() -> None:
    history = events(
        ("a", "pending"), ("a", "processing"), ("a", "failed"), ("b", "pending"),
        ("x", "pending", "v"), ("y", "pending", "v"), ("c", "pending"), ("a", "pending"),
    )  # fmt: skip
    report = run([], [], history)
    assert report.limit_violations == ["u: admitted a job to 3 pending (max_waiting 2) at seq 8"]


def test_the_daily_limit_counts_creations_per_day() -> None:
    history = events(*((f"j{n}", "pending") for n in range(4)))
    report = run([], [], history, max_running={}, max_waiting={}, max_daily={"u": 3})
    assert report.limit_violations == [f"u: more than 3 jobs created on {T0.date()}"]


def test_a_daily_overrun_is_seen_in_the_acknowledgements_even_with_no_history() -> None:
    creates = [ok(f"j{n}") for n in range(4)] + [ok("v1", "v")]
    report = run(creates, [], [], max_running={}, max_waiting={}, max_daily={"u": 3, "v": 3})
    assert report.limit_violations == [f"u: 4 creates acknowledged on {T0.date()} (daily limit 3)"]


def test_an_acknowledgement_whose_day_is_not_known_is_not_counted() -> None:
    midnight = datetime(2026, 11, 29, tzinfo=UTC).timestamp()
    creates = [ok(f"j{n}", at=midnight + 1) for n in range(3)]
    straddling = CreateOp("key-x", "u", "http", "ok", "x", "", midnight - 0.1, midnight + 0.1)
    report = run([*creates, straddling], [], [], max_running={}, max_waiting={}, max_daily={"u": 3})
    assert not report.limit_violations


def test_executions_beyond_one_per_job_are_counted_not_failed() -> None:
    executions = [
        Execution("a", 1, "w1", START),
        Execution("a", 2, "w2", START),
        Execution("b", 1, "w1", START),
    ]
    history = events(
        *lifetime("a", "pending", "processing", "pending", "processing", "completed"),
        *lifetime("b", "pending", "processing", "completed"),
    )
    report = run(
        [ok("a"), ok("b")], [job("a", attempt=2), job("b")], history, executions=executions
    )
    assert report.ok, report.summary()
    assert (report.executions, report.duplicate_executions) == (3, 1)


def test_a_completed_job_whose_final_attempt_never_ran_is_caught() -> None:
    history = events(*lifetime("a", "pending", "processing", "pending", "processing", "completed"))
    executions = [Execution("a", 1, "w", START)]
    report = run([ok("a")], [job("a", attempt=2)], history, executions=executions)
    assert report.execution_violations == ["a: completed at attempt 2, which never ran"]


def test_an_execution_the_jobs_do_not_explain_is_caught() -> None:
    history = events(*lifetime("a", "pending", "processing", "completed"))
    executions = [
        Execution("a", 1, "w", START),
        Execution("ghost", 1, "w", START),
        Execution("a", 2, "w", START),
        Execution("a", 1, "w2", None),
    ]
    report = run([ok("a")], [job("a")], history, executions=executions)
    assert report.execution_violations == [
        "ghost attempt 1 on w: ran a job the database does not hold",
        "a attempt 2 on w: ran an attempt the job never reached (it is at 1)",
        "a attempt 1 on w2: recorded no start time",
    ]


def test_an_execution_that_starts_after_its_job_ended_is_caught_beyond_the_tolerance() -> None:
    history = events(*lifetime("a", "pending", "processing", "completed"))
    slightly = [Execution("a", 1, "w", START), Execution("a", 1, "w2", FINISHED + 0.3)]
    assert run([ok("a")], [job("a")], history, executions=slightly).ok
    late = [Execution("a", 1, "w", START), Execution("a", 1, "w2", FINISHED + 2)]
    report = run([ok("a")], [job("a")], history, executions=late)
    assert report.execution_violations == [
        "a attempt 1 on w2: started 2.00 s after its job was completed"
    ]


def test_a_failure_the_nemesis_saw_at_the_fault_fails_the_run() -> None:
    broken = Fault(
        "kill_mid_transaction",
        "crasher-1",
        START,
        START + 1,
        failure="the uncommitted job j1 is in the database",
    )
    history = events(*lifetime("a", "pending", "processing", "completed"))
    report = check(
        [ok("a")],
        ran([job("a")]),
        Observed([job("a")], history),
        max_running={},
        max_waiting={},
        max_daily={},
        faults=[broken],
    )
    assert report.fault_failures == [
        "kill_mid_transaction (crasher-1): the uncommitted job j1 is in the database"
    ]
    assert not report.ok


def test_recovery_is_measured_on_what_each_fault_hit() -> None:
    # a ends at +4 (finished_at), b never; completions at +3 by the HTTP worker, +6 by a DB one.
    jobs = [
        StoredJob("a", "u", "completed", 1, "key-a", {"attempt": 1}, START + 4),
        StoredJob("b", "u", "pending", 0, "key-b", None),
    ]
    history = [
        Event(1, "a", "u", "pending", 0, T0),
        Event(2, "a", "u", "processing", 1, T0 + timedelta(seconds=2), "http-worker-3"),
        Event(3, "a", "u", "completed", 1, T0 + timedelta(seconds=3), "http-worker-3"),
        Event(4, "b", "u", "pending", 0, T0 + timedelta(seconds=6)),
    ]
    http_create = CreateOp("key-h", "u", "http", "ok", "h", "", START + 2.5, START + 5)
    before_the_crash = CreateOp("key-l", "u", "library", "ok", "l", "", START + 5.1, START + 5.2)
    executions = [Execution("a", 1, "db-worker-1", START + 2.2)]
    faults = [
        Fault("kill_worker", "db-worker-0", START + 1, START + 1.5, held=("a",)),
        Fault("pause_worker", "db-worker-1", START + 1, START + 2),
        Fault("kill_server", "jobdesk serve", START + 2, START + 2.4),
        Fault("restart_postgres", "postgresql", START + 5, START + 5.9, down=START + 5.5),
        Fault("kill_worker", "http-worker-3", START + 5, START + 6, held=("b",)),
        Fault("terminate_backends", "9 connections", START + 7, START + 7),
    ]
    report = check(
        [http_create, before_the_crash],
        executions,
        Observed(jobs, history),
        max_running={},
        max_waiting={},
        max_daily={},
        faults=faults,
        http_workers={"http-worker-3"},
    )
    assert [(r.label, r.seconds and round(r.seconds, 3)) for r in report.recovery] == [
        ("kill_worker (db)", 3.0),  # a, the job it held, ended at +4
        ("pause_worker (db)", 1.2),  # it started a handler at +2.2
        ("kill_server", 1.0),  # the HTTP worker completed a at +3 (the create sent at +2.5
        # was acknowledged only at +5)
        ("restart_postgres", 1.0),  # b's event at +6 (not the create before it went down)
        ("kill_worker (http)", None),  # b never ended
        ("terminate_backends", None),  # nothing happened after +7
    ]
    assert report.unrecovered == [
        "kill_worker (http-worker-3): the jobs it held ending never happened",
        "terminate_backends (9 connections): a database operation never happened",
    ]
    assert not report.ok


def test_the_attempt_a_user_cancelled_may_start_after_the_cancellation() -> None:
    # Its worker learns of the cancellation on its next call; another attempt may not.
    history = events(*lifetime("a", "pending", "processing", "cancelled"))
    cancelled = job("a", "cancelled")
    after = [Execution("a", 1, "w", FINISHED + 2)]
    assert run([ok("a")], [cancelled], history, executions=after).ok
    stale = StoredJob("a", "u", "cancelled", 2, "key-a", None, FINISHED)
    report = run([ok("a")], [stale], history, executions=after)
    assert report.execution_violations == [
        "a attempt 1 on w: started 2.00 s after its job was cancelled"
    ]


def test_a_handler_started_after_its_claims_lease_ran_out_is_reported() -> None:
    history = events(*lifetime("a", "pending", "processing", "completed"))  # claimed at +2
    claimed = START + 2
    executions = [Execution("a", 1, "w", claimed + 0.1), Execution("a", 1, "w2", claimed + 3)]
    report = check(
        [ok("a")],
        executions,
        Observed([job("a")], history),
        max_running={},
        max_waiting={},
        max_daily={},
        lease_seconds=2,
        clock_tolerance=0.5,
    )
    assert report.late_starts == ["a attempt 1 on w2: started 3.00 s after its claim"]
    assert report.ok  # reported, not a failure (see docs/guarantees.md)

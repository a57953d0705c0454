"""The total-queue checker: what a fault-injection run must never show, and what it reports.

Modelled on Jepsen's total-queue checker. Its input is what the clients saw
(each create acknowledged, refused, failed or of unknown outcome, with when it
was sent and answered), what the handlers recorded (each execution: job id,
attempt, worker, start time), the faults, and what the database holds once
everything has drained (the jobs and their history of status changes). It is
pure: no I/O, so it is tested on made-up histories too.

It does not take the database's word for its own history: the history must be
consistent with the jobs table and with the design's transition table, the
executions must match the jobs, and the daily limit is also checked against
what the clients were told.

Failures (each must be zero):

- **lost**: acknowledged (or of unknown outcome yet present), but not in a
  terminal status after the drain (or gone);
- **unexpected**: in the database, but never acknowledged nor of unknown outcome;
- **double terminal**: two terminal transitions of one job with no user retry
  between them;
- **stale results**: a completed job whose result was written by an attempt other
  than its last (what fencing prevents);
- **limit violations**: a user with more jobs processing than their running cap
  at some point of the history of transitions; a job admitted (created, or
  retried by its user) while its user already held their waiting limit of pending
  jobs; a user above their daily limit in that history, or in the creates the
  clients saw acknowledged;
- **inconsistent history**: a job with no history, or whose history does not
  begin with its creation, does not end in its stored status, leaves a terminal
  status other than by a user retry, or makes a change the design does not allow;
  history of a job the jobs table does not hold;
- **execution violations**: a completed job with no execution of its final
  attempt; an execution of a job not in the database, of an attempt the job never
  reached, with no start time, or started after its job had ended (except the
  attempt a user cancelled: its worker learns of the cancellation on its next
  call, so its handler may start after it);
- **fault failures**: a check the nemesis made at the fault itself (a signal to a
  process that was not running, a failed ``PRAGMA integrity_check``, an
  uncommitted row that survived a crash, a lock a dead process kept);
- **unrecovered**: a fault after which the component it hit never worked again.

Reported, not failures: duplicate executions (at-least-once), recovered (unknown
outcome, yet present), late starts (a handler started after the lease its claim
granted had run out: a worker frozen while its claim was answered starts the
job when it runs again; its writes are fenced off), and the recovery time after
each fault.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from tests.faults.history import (
    CreateOp,
    Event,
    Execution,
    Fault,
    Observed,
    Outcome,
    StoredJob,
)
from tests.faults.recovery import Recovery, recoveries

__all__ = [
    "ALLOWED",
    "TERMINAL",
    "CreateOp",
    "Event",
    "Execution",
    "Fault",
    "Observed",
    "Outcome",
    "Recovery",
    "Report",
    "StoredJob",
    "check",
]

TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: the design's transition table (DESIGN.md), written out here rather than imported:
#: the checker must not take the code under test's word for what is allowed
ALLOWED = frozenset(
    {
        ("pending", "processing"),
        ("pending", "cancelled"),
        ("processing", "completed"),
        ("processing", "failed"),
        ("processing", "pending"),
        ("processing", "cancelled"),
    }
)
#: the exits from a terminal status a user's ``retry_job`` makes
RETRIES = frozenset({("failed", "pending"), ("cancelled", "pending")})


@dataclass
class Report:
    """The checker's verdict; :attr:`ok` when every failure list is empty."""

    acknowledged: int = 0
    refused: int = 0
    failed_requests: int = 0
    unknown: int = 0
    recovered: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    double_terminal: list[str] = field(default_factory=list)
    stale_results: list[str] = field(default_factory=list)
    limit_violations: list[str] = field(default_factory=list)
    inconsistent_history: list[str] = field(default_factory=list)
    execution_violations: list[str] = field(default_factory=list)
    fault_failures: list[str] = field(default_factory=list)
    unrecovered: list[str] = field(default_factory=list)
    executions: int = 0
    duplicate_executions: int = 0
    #: handlers started after the lease their claim granted had run out (reported)
    late_starts: list[str] = field(default_factory=list)
    terminal: Counter[str] = field(default_factory=Counter)
    #: per fault: how long until the component it hit worked again
    recovery: list[Recovery] = field(default_factory=list)

    @property
    def failures(self) -> dict[str, list[str]]:
        """Every failure list by name (each must be empty)."""
        return {
            "lost": self.lost,
            "unexpected": self.unexpected,
            "double terminal": self.double_terminal,
            "stale result": self.stale_results,
            "limit violation": self.limit_violations,
            "inconsistent history": self.inconsistent_history,
            "execution violation": self.execution_violations,
            "fault failure": self.fault_failures,
            "unrecovered": self.unrecovered,
        }

    @property
    def ok(self) -> bool:
        """Nothing lost, unexpected, doubled, stale, over a limit, inconsistent or stuck."""
        return not any(self.failures.values())

    def summary(self) -> str:
        """A few readable lines, for test failures and the benchmark's record."""
        recoveries = [r.seconds for r in self.recovery if r.seconds is not None]
        worst = f"{max(recoveries):.2f} s" if recoveries else "-"
        counts = ", ".join(f"{name} {len(found)}" for name, found in self.failures.items())
        examples = [
            f"  {name}: {line}" for name, found in self.failures.items() for line in found[:10]
        ]
        return "\n".join(
            [
                f"creates: {self.acknowledged} acknowledged, {self.refused} refused by a limit, "
                f"{self.failed_requests} certainly not applied, {self.unknown} unknown "
                f"({self.recovered} of them present after all)",
                f"terminal: {dict(self.terminal)}",
                counts,
                f"executions {self.executions}, duplicate executions "
                f"{self.duplicate_executions}, started after their lease ran out "
                f"{len(self.late_starts)}",
                f"faults {len(self.recovery)}, worst recovery {worst}",
                *examples,
            ]
        )


def check(
    creates: Iterable[CreateOp],
    executions: Iterable[Execution],
    observed: Observed,
    *,
    max_running: Mapping[str, int],
    max_waiting: Mapping[str, int],
    max_daily: Mapping[str, int],
    faults: Iterable[Fault] = (),
    retried: Collection[str] = (),
    http_workers: Collection[str] = (),
    clock_tolerance: float = 0.5,
    lease_seconds: float | None = None,
) -> Report:
    """Check a run: see the module's docstring for each rule.

    ``retried``: the jobs a client called ``retry_job`` on (the only ones that may
    leave a terminal status); ``http_workers``: the workers that run over HTTP (their
    completions show ``jobdesk serve`` working); ``clock_tolerance``: seconds an
    execution may seem to start after its job ended (clocks of one machine, read by
    different processes at different moments of a transaction); ``lease_seconds``:
    the lease a claim grants, to report the late starts.
    """
    creates = list(creates)
    executions = list(executions)
    faults = list(faults)
    report = Report()
    acknowledged, unknown_keys = _tally(creates, report)
    jobs = {job.id: job for job in observed.jobs}
    for job_id in sorted(acknowledged):
        job = jobs.get(job_id)
        if job is None:
            report.lost.append(f"{job_id}: acknowledged, not in the database")
        elif job.status not in TERMINAL:
            report.lost.append(f"{job_id}: acknowledged, still {job.status} after the drain")
    for job in observed.jobs:
        report.terminal[job.status] += 1
        if job.id in acknowledged:
            pass
        elif (job.user_id, job.idempotency_key) in unknown_keys:
            report.recovered += 1
            if job.status not in TERMINAL:
                report.lost.append(
                    f"{job.id}: created (its client never knew), still {job.status} after the drain"
                )
        else:
            report.unexpected.append(f"{job.id}: in the database, never acknowledged")
        if job.status == "completed" and _result_attempt(job.result) != job.attempt:
            report.stale_results.append(
                f"{job.id}: completed at attempt {job.attempt} with the result of attempt "
                f"{_result_attempt(job.result)}"
            )
    histories = _histories(observed.events)
    report.inconsistent_history = _inconsistent(jobs, histories, retried)
    report.double_terminal = _double_terminal(histories, retried)
    report.limit_violations = [
        *_limit_violations(observed.events, max_running, max_waiting, max_daily),
        *_acknowledged_over_daily(creates, max_daily),
    ]
    report.execution_violations = _execution_violations(jobs, executions, clock_tolerance)
    if lease_seconds is not None:
        report.late_starts = _late_starts(histories, executions, lease_seconds + clock_tolerance)
    runs = Counter(execution.job_id for execution in executions)
    report.executions = sum(runs.values())
    report.duplicate_executions = sum(count - 1 for count in runs.values() if count > 1)
    report.fault_failures = [
        f"{fault.kind} ({fault.target}): {fault.failure}" for fault in faults if fault.failure
    ]
    report.recovery = recoveries(
        faults,
        finished={job.id: job.finished_at for job in observed.jobs},
        events=observed.events,
        creates=creates,
        executions=executions,
        http_workers=http_workers,
    )
    report.unrecovered = [
        f"{r.kind} ({r.target}): {r.measure} never happened"
        for r in report.recovery
        if r.seconds is None
    ]
    return report


def _tally(creates: Iterable[CreateOp], report: Report) -> tuple[set[str], set[tuple[str, str]]]:
    """Count the outcomes; the acknowledged job ids and the (user, key) of unknown ones."""
    acknowledged: set[str] = set()
    unknown_keys: set[tuple[str, str]] = set()
    for op in creates:
        if op.outcome == "ok":
            report.acknowledged += 1
            assert op.job_id is not None
            acknowledged.add(op.job_id)
        elif op.outcome == "refused":
            report.refused += 1
        elif op.outcome == "failed":
            report.failed_requests += 1
        else:
            report.unknown += 1
            unknown_keys.add((op.user_id, op.key))
    return acknowledged, unknown_keys


def _histories(events: Iterable[Event]) -> dict[str, list[Event]]:
    """Each job's events, in the order they were written."""
    histories: defaultdict[str, list[Event]] = defaultdict(list)
    for event in sorted(events, key=lambda event: event.seq):
        histories[event.job_id].append(event)
    return dict(histories)


def _inconsistent(
    jobs: Mapping[str, StoredJob], histories: Mapping[str, list[Event]], retried: Collection[str]
) -> list[str]:
    """Where the history and the jobs table disagree, or the history breaks the design."""
    found: list[str] = []
    for job_id, job in sorted(jobs.items()):
        history = histories.get(job_id, [])
        if not history:
            found.append(f"{job_id}: {job.status}, with no history at all")
            continue
        if history[0].status != "pending":
            found.append(f"{job_id}: its history begins {history[0].status}, not with a creation")
        if history[-1].status != job.status:
            found.append(
                f"{job_id}: its history ends {history[-1].status}, the job is {job.status}"
            )
        for before, after in pairwise(history):
            change = (before.status, after.status)
            if change in ALLOWED or (change in RETRIES and job_id in retried):
                continue
            if before.status in TERMINAL:
                found.append(
                    f"{job_id}: left {before.status} for {after.status} (seq {after.seq}) "
                    "without a user retry"
                )
            else:
                found.append(
                    f"{job_id}: {before.status} -> {after.status} (seq {after.seq}) is not a "
                    "transition of the design"
                )
    found.extend(
        f"{job_id}: {len(history)} events of a job the jobs table does not hold"
        for job_id, history in sorted(histories.items())
        if job_id not in jobs
    )
    return found


def _double_terminal(histories: Mapping[str, list[Event]], retried: Collection[str]) -> list[str]:
    """Jobs that reached a terminal status twice with no user retry between."""
    found: list[str] = []
    for job_id, history in sorted(histories.items()):
        ended: str | None = None
        for event in history:
            if event.status in TERMINAL:
                if ended is not None:
                    found.append(
                        f"{job_id}: {event.status} (seq {event.seq}) after an earlier {ended}"
                    )
                ended = event.status
            elif ended is not None and (ended, event.status) in RETRIES and job_id in retried:
                ended = None  # the user revived it: it may end again
    return found


def _result_attempt(result: Any) -> int | None:
    if isinstance(result, dict) and isinstance(result.get("attempt"), int):
        return int(result["attempt"])
    return None


def _limit_violations(
    events: Iterable[Event],
    max_running: Mapping[str, int],
    max_waiting: Mapping[str, int],
    max_daily: Mapping[str, int],
) -> list[str]:
    """Replay each user's transitions in the order they were written.

    Running: a job runs from its ``processing`` event to its next event. Every start
    (a claim, a start by id) is made under the user's serialisation, after the count
    of their running jobs that allowed it, so every end that count saw is earlier in
    the order: more running jobs than the cap in this replay is a real overrun.

    Waiting: judged only at admission, when a job becomes ``pending`` from outside
    (its creation, or its user's retry of a failed or cancelled job): the user's
    pending jobs then, this one included, must fit the waiting limit. A requeue (a
    retryable failure, an expired lease, a release, a snooze) is not admitted and may
    go past it. Every move into or out of ``pending`` writes its history under the
    user's serialisation too, so the replay counts what the admission counted.
    """
    violations: list[str] = []
    running: defaultdict[str, set[str]] = defaultdict(set)
    waiting: defaultdict[str, set[str]] = defaultdict(set)
    created: Counter[tuple[str, str]] = Counter()
    last: dict[str, str] = {}
    for event in sorted(events, key=lambda event: event.seq):
        user = event.user_id
        before = last.get(event.job_id)
        last[event.job_id] = event.status
        running[user].discard(event.job_id)
        waiting[user].discard(event.job_id)
        if event.status == "processing":
            running[user].add(event.job_id)
            cap = max_running.get(user)
            if cap is not None and len(running[user]) > cap:
                violations.append(
                    f"{user}: {len(running[user])} jobs processing (max_running {cap}) "
                    f"at seq {event.seq}"
                )
        elif event.status == "pending":
            waiting[user].add(event.job_id)
            cap = max_waiting.get(user)
            admitted = before is None or before in TERMINAL
            if admitted and cap is not None and len(waiting[user]) > cap:
                violations.append(
                    f"{user}: admitted a job to {len(waiting[user])} pending "
                    f"(max_waiting {cap}) at seq {event.seq}"
                )
        if before is None:
            day = event.at.date().isoformat()
            created[user, day] += 1
            limit = max_daily.get(user)
            if limit is not None and created[user, day] == limit + 1:
                violations.append(f"{user}: more than {limit} jobs created on {day}")
    return violations


def _acknowledged_over_daily(
    creates: Iterable[CreateOp], max_daily: Mapping[str, int]
) -> list[str]:
    """The daily limit against what the clients were told, not the database's history.

    Each acknowledged create counts on the UTC day of its answer; one whose request
    and answer straddle midnight is not counted (its day is not known), so the count
    is a lower bound and a count above the limit is a real overrun.
    """
    created: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for op in creates:
        if op.outcome != "ok" or op.job_id is None or op.user_id not in max_daily:
            continue
        day = _day(op.at)
        if op.sent and _day(op.sent) != day:
            continue
        created[op.user_id, day].add(op.job_id)
    return [
        f"{user}: {len(jobs)} creates acknowledged on {day} (daily limit {max_daily[user]})"
        for (user, day), jobs in sorted(created.items())
        if len(jobs) > max_daily[user]
    ]


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def _execution_violations(
    jobs: Mapping[str, StoredJob], executions: Sequence[Execution], tolerance: float
) -> list[str]:
    """The handlers' own record against the jobs: each must explain the other."""
    found: list[str] = []
    ran: set[tuple[str, int]] = {(e.job_id, e.attempt) for e in executions}
    for job_id, stored in sorted(jobs.items()):
        if stored.status == "completed" and (job_id, stored.attempt) not in ran:
            found.append(f"{job_id}: completed at attempt {stored.attempt}, which never ran")
    for execution in executions:
        job = jobs.get(execution.job_id)
        where = f"{execution.job_id} attempt {execution.attempt} on {execution.worker}"
        if job is None:
            found.append(f"{where}: ran a job the database does not hold")
            continue
        if execution.attempt > job.attempt:
            found.append(f"{where}: ran an attempt the job never reached (it is at {job.attempt})")
        if execution.started is None:
            found.append(f"{where}: recorded no start time")
        elif (
            job.status in TERMINAL
            and job.finished_at is not None
            and execution.started > job.finished_at + tolerance
            and not (job.status == "cancelled" and execution.attempt == job.attempt)
        ):
            late = execution.started - job.finished_at
            found.append(f"{where}: started {late:.2f} s after its job was {job.status}")
    return found


def _late_starts(
    histories: Mapping[str, list[Event]], executions: Sequence[Execution], lease: float
) -> list[str]:
    """Executions that started after the lease their attempt's claim granted had run out."""
    claimed = {
        (event.job_id, event.attempt): event.at.timestamp()
        for history in histories.values()
        for event in history
        if event.status == "processing"
    }
    found: list[str] = []
    for execution in executions:
        at = claimed.get((execution.job_id, execution.attempt))
        if at is not None and execution.started is not None and execution.started > at + lease:
            found.append(
                f"{execution.job_id} attempt {execution.attempt} on {execution.worker}: started "
                f"{execution.started - at:.2f} s after its claim"
            )
    return found

"""The total-queue checker: what a fault-injection run must never show, and what it reports.

Modelled on Jepsen's total-queue checker. Its input is what the clients saw
(each create acknowledged, refused, failed or of unknown outcome), what the
handlers recorded (each execution: job id and attempt), the faults, and what
the database holds once everything has drained (the jobs and their history of
status changes). It is pure: no I/O, so it is tested on made-up histories too.

Failures (each must be zero):

- **lost**: acknowledged, but not in a terminal status after the drain (or gone);
- **unexpected**: in the database, but never acknowledged nor of unknown outcome;
- **double terminal**: two terminal transitions of one job with no return to the
  queue between them;
- **stale results**: a completed job whose result was written by an attempt other
  than its last (what fencing prevents);
- **limit violations**: a user above their active limit at some point of the
  history of transitions, or above their daily limit.

Reported, not failures: duplicate executions (at-least-once), recovered (unknown
outcome, yet present), and the recovery time after each fault.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "CreateOp",
    "Event",
    "Execution",
    "Fault",
    "Observed",
    "Report",
    "StoredJob",
    "check",
]

TERMINAL = frozenset({"completed", "failed", "cancelled"})
ACTIVE = frozenset({"pending", "processing"})

Outcome = Literal["ok", "refused", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class CreateOp:
    """One create a client attempted, and what it learned.

    ``ok``: acknowledged (``job_id`` set); ``refused``: a limit said no; ``failed``:
    certainly not applied (the request never left, or was invalid); ``unknown``:
    no answer (a timeout, a broken connection, a crash): it may have been applied.
    """

    key: str
    user_id: str
    via: str
    outcome: Outcome
    job_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Execution:
    """A handler started on a job (recorded by the handler itself)."""

    job_id: str
    attempt: int
    worker: str


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault the nemesis injected, with when it started and ended (epoch seconds)."""

    kind: str
    target: str
    started: float
    ended: float
    #: jobs a killed or paused worker held when the fault began
    held: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A job as the database holds it after the drain."""

    id: str
    user_id: str
    status: str
    attempt: int
    idempotency_key: str | None
    result: Any


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the history of status changes (ordered by ``seq``)."""

    seq: int
    job_id: str
    user_id: str
    status: str
    attempt: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Observed:
    """What the database holds after the drain."""

    jobs: Sequence[StoredJob]
    events: Sequence[Event]


@dataclass
class Report:
    """The checker's verdict; :attr:`ok` when every failure count is zero."""

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
    executions: int = 0
    duplicate_executions: int = 0
    terminal: Counter[str] = field(default_factory=Counter)
    #: per fault: (kind, target, seconds until the queue moved again or its jobs ended)
    recovery: list[tuple[str, str, float | None]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No job lost, none unexpected, none ended twice, no stale result, no limit overrun."""
        return not (
            self.lost
            or self.unexpected
            or self.double_terminal
            or self.stale_results
            or self.limit_violations
        )

    def summary(self) -> str:
        """A few readable lines, for test failures and the benchmark's record."""
        recoveries = [seconds for _, _, seconds in self.recovery if seconds is not None]
        worst = f"{max(recoveries):.2f} s" if recoveries else "-"
        return "\n".join(
            [
                f"creates: {self.acknowledged} acknowledged, {self.refused} refused by a limit, "
                f"{self.failed_requests} not sent, {self.unknown} unknown "
                f"({self.recovered} of them recovered)",
                f"terminal: {dict(self.terminal)}",
                f"lost {len(self.lost)}, unexpected {len(self.unexpected)}, "
                f"double terminal {len(self.double_terminal)}, stale results "
                f"{len(self.stale_results)}, limit violations {len(self.limit_violations)}",
                f"executions {self.executions}, duplicate executions {self.duplicate_executions}",
                f"faults {len(self.recovery)}, worst recovery {worst}",
                *(f"  lost: {job}" for job in self.lost[:10]),
                *(f"  unexpected: {job}" for job in self.unexpected[:10]),
                *(f"  double terminal: {job}" for job in self.double_terminal[:10]),
                *(f"  stale result: {job}" for job in self.stale_results[:10]),
                *(f"  limit: {violation}" for violation in self.limit_violations[:10]),
            ]
        )


def check(
    creates: Iterable[CreateOp],
    executions: Iterable[Execution],
    observed: Observed,
    *,
    max_active: Mapping[str, int],
    max_daily: Mapping[str, int],
    faults: Iterable[Fault] = (),
) -> Report:
    """Check a run: see the module's docstring for each rule."""
    report = Report()
    acknowledged, unknown_keys = _tally(creates, observed, report)
    jobs = {job.id: job for job in observed.jobs}
    for job_id in sorted(acknowledged):
        job = jobs.get(job_id)
        if job is None:
            report.lost.append(f"{job_id}: acknowledged, not in the database")
        elif job.status not in TERMINAL:
            report.lost.append(f"{job_id}: acknowledged, still {job.status} after the drain")
    for job in observed.jobs:
        report.terminal[job.status] += 1
        if job.id not in acknowledged and (job.user_id, job.idempotency_key) not in unknown_keys:
            report.unexpected.append(f"{job.id}: in the database, never acknowledged")
        if job.status == "completed" and _result_attempt(job.result) != job.attempt:
            report.stale_results.append(
                f"{job.id}: completed at attempt {job.attempt} with the result of attempt "
                f"{_result_attempt(job.result)}"
            )
    report.double_terminal = _double_terminal(observed.events)
    report.limit_violations = _limit_violations(observed.events, max_active, max_daily)

    runs = Counter(execution.job_id for execution in executions)
    report.executions = sum(runs.values())
    report.duplicate_executions = sum(count - 1 for count in runs.values() if count > 1)
    report.recovery = _recovery(faults, observed)
    return report


def _tally(
    creates: Iterable[CreateOp], observed: Observed, report: Report
) -> tuple[set[str], set[tuple[str, str]]]:
    """Count the outcomes; the acknowledged job ids and the (user, key) of unknown ones."""
    present = {(job.user_id, job.idempotency_key) for job in observed.jobs}
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
            report.recovered += (op.user_id, op.key) in present
    return acknowledged, unknown_keys


def _double_terminal(events: Iterable[Event]) -> list[str]:
    """Jobs that reached a terminal status twice with no return to the queue between."""
    found: list[str] = []
    ended: dict[str, bool] = {}
    for event in sorted(events, key=lambda event: event.seq):
        if event.status in TERMINAL:
            if ended.get(event.job_id):
                found.append(
                    f"{event.job_id}: {event.status} (seq {event.seq}) after an earlier terminal"
                )
            ended[event.job_id] = True
        elif event.status == "pending":
            ended[event.job_id] = False  # back in the queue (a retry): it may end again
    return found


def _result_attempt(result: Any) -> int | None:
    if isinstance(result, dict) and isinstance(result.get("attempt"), int):
        return int(result["attempt"])
    return None


def _limit_violations(
    events: Iterable[Event], max_active: Mapping[str, int], max_daily: Mapping[str, int]
) -> list[str]:
    """Replay each user's transitions in the order they were written.

    A job enters the user's active count when it becomes ``pending`` from outside
    it (created, or retried by its user) and leaves it at a terminal status.
    Entries are made under the user's serialisation, after the count that allowed
    them, so every exit they counted is earlier in the order: a count above the
    limit in this replay is a real overrun.
    """
    violations: list[str] = []
    active: defaultdict[str, set[str]] = defaultdict(set)
    created: Counter[tuple[str, str]] = Counter()
    seen: set[str] = set()
    for event in sorted(events, key=lambda event: event.seq):
        user = event.user_id
        if event.status in ACTIVE and event.job_id not in active[user]:
            active[user].add(event.job_id)
            limit = max_active.get(user)
            if limit is not None and len(active[user]) > limit:
                violations.append(
                    f"{user}: {len(active[user])} active jobs (limit {limit}) at seq {event.seq}"
                )
        elif event.status in TERMINAL:
            active[user].discard(event.job_id)
        if event.job_id not in seen:
            seen.add(event.job_id)
            day = event.at.date().isoformat()
            created[user, day] += 1
            limit = max_daily.get(user)
            if limit is not None and created[user, day] == limit + 1:
                violations.append(f"{user}: more than {limit} jobs created on {day}")
    return violations


def _recovery(faults: Iterable[Fault], observed: Observed) -> list[tuple[str, str, float | None]]:
    """Per fault: when its held jobs all ended, or else when the queue next moved.

    A fault that held jobs (a killed or paused worker) recovers when the last of
    them reaches a terminal status; any other fault, at the first terminal
    transition after it ended. None when that never happened (for a fault that
    held nothing, the queue may simply have been empty).
    """
    finished: dict[str, float] = {}
    ends: list[float] = []
    for event in observed.events:
        if event.status in TERMINAL:
            moment = event.at.timestamp()
            finished[event.job_id] = max(finished.get(event.job_id, 0.0), moment)
            ends.append(moment)
    ends.sort()
    recovery: list[tuple[str, str, float | None]] = []
    for fault in faults:
        seconds: float | None
        if fault.held:
            times = [finished.get(job_id) for job_id in fault.held]
            seconds = None if None in times else max(t for t in times if t) - fault.started
        else:
            later = [moment for moment in ends if moment > fault.ended]
            seconds = later[0] - fault.started if later else None
        recovery.append((fault.kind, fault.target, seconds))
    return recovery

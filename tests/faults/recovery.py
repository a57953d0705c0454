"""Recovery time after each fault, measured on the component the fault hit.

- a killed or paused worker: when the last job it held reached a terminal status
  (or, when it held none, when it next started a handler);
- ``jobdesk serve`` killed: the first create acknowledged over HTTP, or the first
  completion by a worker that runs over HTTP, after the kill (the restart included);
- the database's connections cut, its server restarted, a process killed in the
  middle of its SQLite transaction: the first operation the database carried out
  after the fault (a change in its history, or a create acknowledged through the
  library).

Each is counted from when the fault started (a restart's own time included), on
evidence from after the target was down for sure. A fault after which that never
happened did not recover: ``seconds`` is None, and
the checker fails the run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tests.faults.history import CreateOp, Event, Execution, Fault

__all__ = ["Recovery", "recoveries"]


@dataclass(frozen=True, slots=True)
class Recovery:
    """How long after ``kind`` hit ``target`` it worked again, and what showed it."""

    kind: str
    label: str
    target: str
    seconds: float | None
    measure: str


def recoveries(
    faults: Iterable[Fault],
    *,
    finished: Mapping[str, float | None],
    events: Sequence[Event],
    creates: Sequence[CreateOp],
    executions: Sequence[Execution],
    http_workers: Collection[str],
) -> list[Recovery]:
    """One :class:`Recovery` per fault, in the faults' order."""
    database_moments = sorted(
        [event.at.timestamp() for event in events]
        + [op.at for op in creates if op.outcome == "ok" and op.via == "library"]
    )
    http_completions = sorted(
        event.at.timestamp()
        for event in events
        if event.status == "completed" and event.worker in http_workers
    )
    found: list[Recovery] = []
    for fault in faults:
        # Work done between the fault's start and the moment it took effect is not
        # recovery: count evidence from when the target was down for sure.
        since = max(fault.started, fault.down)
        seconds: float | None
        if fault.kind in ("kill_worker", "pause_worker") and fault.held:
            measure = "the jobs it held ending"
            ends = [finished.get(job_id) for job_id in fault.held]
            seconds = None if None in ends else max(e for e in ends if e) - fault.started
        elif fault.kind in ("kill_worker", "pause_worker"):
            measure = "it starting a handler again"
            seconds = _first_after(
                fault.started,
                since,
                sorted(e.started for e in executions if e.worker == fault.target and e.started),
            )
        elif fault.kind == "kill_server":
            measure = "an HTTP create acknowledged or an HTTP worker's completion"
            seconds = _first_after(
                fault.started,
                since,
                [op.at for op in creates if _http_ok_sent_after(op, since)] + http_completions,
            )
        else:
            measure = "a database operation"
            seconds = _first_after(fault.started, since, database_moments)
        found.append(Recovery(fault.kind, fault.label, fault.target, seconds, measure))
    return found


def _http_ok_sent_after(op: CreateOp, moment: float) -> bool:
    return op.via == "http" and op.outcome == "ok" and op.sent >= moment


def _first_after(started: float, since: float, moments: Iterable[float]) -> float | None:
    """Seconds from ``started`` to the first of ``moments`` after ``since``."""
    later = [m for m in moments if m > since]
    return min(later) - started if later else None

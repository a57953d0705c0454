"""The fair scheduler on SQLite: admission, the ``waiting`` counts and clocks, the claim.

SQLite has one writer at a time (``BEGIN IMMEDIATE``), so the store runs the Python
rule itself rather than restating it in SQL: each function here takes the connection
of a transaction the caller opened, reads the rows the rule needs, applies
:mod:`jobdesk.limits` and :mod:`jobdesk.scheduling` to them and writes the outcome.

Every path that moves a job into or out of ``pending`` goes through
:func:`account_change` (one job) or the claim's :func:`write_starts`, which keep the
user's ``waiting`` count and clock right in the same transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Generator
from datetime import datetime
from typing import Any

from jobdesk import lifecycle, scheduling
from jobdesk import limits as limit_rules
from jobdesk.errors import InvalidTransition
from jobdesk.limits import Limits
from jobdesk.models import Action, Job, JobStatus, Worker
from jobdesk.scheduling import QueuedUser, Rate, TypeGate, TypeLimits, WaitFacts
from jobdesk.store.sqlite_connection import Q
from jobdesk.store.sqlite_rows import (
    event_params,
    job_from_row,
    job_params,
    parse_time,
    time_text,
    types_param,
)

__all__ = [
    "AHEAD_BOUND",
    "account_change",
    "admit",
    "plan_starts",
    "read_gates",
    "running_count",
    "type_limits_from_row",
    "user_row",
    "wait_facts",
    "write_starts",
]

#: ``wait_facts`` counts the jobs ahead of one up to this many, then stops counting
AHEAD_BOUND = 10_000


def user_row(connection: sqlite3.Connection, user_id: str) -> dict[str, Any] | None:
    """The user's ``users`` row as a mapping (the shape :mod:`jobdesk.limits` reads)."""
    row = connection.execute(Q["select_user"], {"user_id": user_id}).fetchone()
    return None if row is None else dict(row)


def running_count(connection: sqlite3.Connection, user_id: str) -> int:
    """The user's jobs processing now: counted, never stored."""
    (running,) = connection.execute(Q["count_running"], {"user_id": user_id}).fetchone()
    return int(running)


def _arrival_vtime(
    connection: sqlite3.Connection, user_id: str, row: dict[str, Any] | None
) -> float:
    """The user's clock once they have jobs waiting (:func:`scheduling.vtime_on_arrival`
    when they had none, else their own)."""
    vtime = 0.0 if row is None else float(row["vtime"])
    if row is not None and row["waiting"] > 0:
        return vtime
    (floor,) = connection.execute(Q["arrival_floor"], {"user_id": user_id}).fetchone()
    return scheduling.vtime_on_arrival(vtime, floor)


def admit(
    connection: sqlite3.Connection, user_id: str, count: int, limits: Limits, now: datetime
) -> None:
    """Let ``count`` new pending jobs of ``user_id`` in (creates or a retry), or refuse them.

    Judged from the user's row: :func:`~jobdesk.limits.check_daily`, then
    :func:`~jobdesk.limits.check_waiting`. Nothing is written when refused; else the
    day's count and ``waiting`` go up by ``count`` and the arrival rule sets the clock.
    """
    row = user_row(connection, user_id)
    effective = limits.for_user(limit_rules.overrides_of(row))
    created_today = limit_rules.created_today(row, now)
    limit_rules.check_daily(created_today, effective.max_daily, now, count)
    limit_rules.check_waiting(0 if row is None else row["waiting"], effective.max_waiting, count)
    connection.execute(
        Q["admit_user"],
        {
            "user_id": user_id,
            "day": limit_rules.usage_day(now),
            "created_on_day": created_today + count,
            "count": count,
            "vtime": _arrival_vtime(connection, user_id, row),
        },
    )


def _requeued(connection: sqlite3.Connection, user_id: str) -> None:
    """One of the user's jobs is pending again without admission (a requeue)."""
    vtime = _arrival_vtime(connection, user_id, user_row(connection, user_id))
    connection.execute(Q["add_waiting"], {"user_id": user_id, "count": 1, "vtime": vtime})


def _left(connection: sqlite3.Connection, user_id: str, count: int, vtime: float | None) -> None:
    """``count`` of the user's pending jobs left the queue; their clock is now ``vtime``
    (None: unchanged, as for a cancel)."""
    connection.execute(Q["remove_waiting"], {"user_id": user_id, "count": count, "vtime": vtime})


def type_limits_from_row(row: sqlite3.Row) -> TypeLimits:
    """The one place a ``type_limits`` row becomes :class:`~jobdesk.scheduling.TypeLimits`."""
    rate = None if row["rate_count"] is None else Rate(row["rate_count"], row["rate_period"])
    return TypeLimits(row["type"], row["max_running"], rate)


def _gate_from_row(row: sqlite3.Row) -> TypeGate:
    return TypeGate(type_limits_from_row(row), row["running"], parse_time(row["next_start_at"]))


def read_gates(connection: sqlite3.Connection) -> dict[str, TypeGate]:
    """Every limited type's gate: its limits, jobs processing now and next start time."""
    return {row["type"]: _gate_from_row(row) for row in connection.execute(Q["type_gates"])}


def _read_gate(connection: sqlite3.Connection, job_type: str) -> TypeGate | None:
    row = connection.execute(Q["type_gate"], {"type": job_type}).fetchone()
    return None if row is None else _gate_from_row(row)


def _start(connection: sqlite3.Connection, job: Job, limits: Limits, now: datetime) -> None:
    """A start by id: refused past the user's running cap or a closed type gate, else
    what a claim does to the user (clock, ``waiting``) and to the type's rate."""
    row = user_row(connection, job.user_id)
    effective = limits.for_user(limit_rules.overrides_of(row))
    running = running_count(connection, job.user_id)
    if running >= effective.max_running:
        raise InvalidTransition(
            job.id,
            JobStatus.PENDING.value,
            Action.START.value,
            f"{job.user_id} already has {running} jobs running "
            f"(max_running {effective.max_running})",
        )
    gate = _read_gate(connection, job.type)
    if gate is not None and not gate.open(now):
        pool = gate.limits.max_running
        if pool is not None and gate.running >= pool:
            reason = (
                f"the type's pool is full ({gate.running} {job.type} jobs running, "
                f"max_running {pool})"
            )
        else:
            assert gate.next_start_at is not None  # open() is False for no other reason
            reason = f"the type's rate allows the next start at {gate.next_start_at.isoformat()}"
        raise InvalidTransition(job.id, JobStatus.PENDING.value, Action.START.value, reason)
    vtime = 0.0 if row is None else float(row["vtime"])
    _left(connection, job.user_id, 1, scheduling.vtime_after_start(vtime, effective.weight))
    if gate is not None and gate.limits.rate is not None:
        gate.started(now)
        _write_next_start(connection, gate)


def _write_next_start(connection: sqlite3.Connection, gate: TypeGate) -> None:
    params = {"type": gate.limits.type, "next_start_at": time_text(gate.next_start_at)}
    connection.execute(Q["set_next_start"], params)


def account_change(
    connection: sqlite3.Connection, before: Job, after: Job, limits: Limits, now: datetime
) -> None:
    """Keep the user's ``waiting`` count and clock right for one job's change, checking
    what the change must pass first (a start: the running cap and the type's gate; a
    retry: admission). Raises before writing anything when refused."""
    was_pending = before.status is JobStatus.PENDING
    if was_pending == (after.status is JobStatus.PENDING):
        return
    if was_pending and after.status is JobStatus.PROCESSING:
        _start(connection, after, limits, now)
    elif was_pending:
        _left(connection, after.user_id, 1, None)
    elif before.status.is_finished:
        admit(connection, after.user_id, 1, limits, now)
    else:
        _requeued(connection, after.user_id)


def _walk(
    connection: sqlite3.Connection,
    *,
    limits: Limits,
    now: datetime,
    types: frozenset[str] | None,
    closed: frozenset[str],
    limit: int,
) -> Generator[QueuedUser]:
    """The waiting users by ``(vtime, user_id)``, read one at a time as the caller asks:
    each with their running count, effective cap and weight, and (below their cap)
    their first ``limit`` pending jobs that may start now, in their own order."""
    cursor = connection.execute(Q["waiting_users"])
    try:
        for row in cursor:
            effective = limits.for_user(limit_rules.overrides_of(dict(row)))
            user = QueuedUser(
                user_id=row["user_id"],
                vtime=float(row["vtime"]),
                weight=effective.weight,
                running=running_count(connection, row["user_id"]),
                max_running=effective.max_running,
            )
            if user.running < user.max_running:
                params = {
                    "user_id": user.user_id,
                    "now": time_text(now),
                    "types": types_param(types),
                    "closed": types_param(closed),
                    "limit": limit,
                }
                user.jobs = [
                    job_from_row(job) for job in connection.execute(Q["user_queue"], params)
                ]
            yield user
    finally:
        cursor.close()


def plan_starts(
    connection: sqlite3.Connection,
    types: frozenset[str] | None,
    limit: int,
    limits: Limits,
    now: datetime,
) -> tuple[list[Job], list[QueuedUser], dict[str, TypeGate]]:
    """The jobs a claim of ``limit`` starts now, in order (:func:`scheduling.plan` over
    :func:`scheduling.candidates` of the walk), with the planned users and gates as the
    plan left them (clocks, running counts, next start times)."""
    if limit < 1:
        return [], [], {}
    gates = read_gates(connection)
    closed = frozenset(job_type for job_type, gate in gates.items() if not gate.open(now))

    def allowed(job: Job) -> bool:
        return types is None or job.type in types

    walk = _walk(connection, limits=limits, now=now, types=types, closed=closed, limit=limit)
    with contextlib.closing(walk):
        users = scheduling.candidates(walk, limit=limit, now=now, allowed=allowed, gates=gates)
    chosen = scheduling.plan(users, limit=limit, now=now, allowed=allowed, gates=gates)
    return chosen, users, gates


def write_starts(
    connection: sqlite3.Connection,
    planned: tuple[list[Job], list[QueuedUser], dict[str, TypeGate]],
    *,
    worker: Worker,
    lease_seconds: float,
    now: datetime,
) -> list[Job]:
    """Start the planned jobs (:func:`lifecycle.start`, with their history entries) and
    write the users' clocks and ``waiting`` counts and the types' next start times."""
    chosen, users, gates = planned
    started = [
        lifecycle.start(job, now, worker=worker, lease_seconds=lease_seconds) for job in chosen
    ]
    connection.executemany(Q["update_job"], [job_params(job) for job in started])
    connection.executemany(Q["insert_event"], [event_params(job) for job in started])
    starts = Counter(job.user_id for job in chosen)
    for user in users:
        if starts[user.user_id]:
            _left(connection, user.user_id, starts[user.user_id], user.vtime)
    for job_type in sorted({job.type for job in chosen}):
        gate = gates.get(job_type)
        if gate is not None and gate.limits.rate is not None:
            _write_next_start(connection, gate)
    return started


def wait_facts(
    connection: sqlite3.Connection, job: Job, limits: Limits, now: datetime
) -> WaitFacts:
    """What :func:`scheduling.why_waiting` needs to explain ``job``, read now."""
    row = user_row(connection, job.user_id)
    effective = limits.for_user(limit_rules.overrides_of(row))
    params = {
        "user_id": job.user_id,
        "now": time_text(now),
        "priority": job.priority,
        "id": job.id,
        "bound": AHEAD_BOUND,
    }
    (ahead,) = connection.execute(Q["count_ahead"], params).fetchone()
    return WaitFacts(
        now=now,
        user_running=running_count(connection, job.user_id),
        user_max_running=effective.max_running,
        gate=_read_gate(connection, job.type),
        ahead=int(ahead),
    )

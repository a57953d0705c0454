"""Fair scheduling on PostgreSQL: claims, the queue's peek, type limits, why a job waits.

A claim is one call of ``jobdesk.claim_fair`` (migration 0011), the SQL twin of
:func:`jobdesk.scheduling.candidates` and :func:`~jobdesk.scheduling.plan`: one round
trip, whatever the queue holds. Everything that only reads (``ready_jobs``,
``wait_facts``) reads the same state without locks and runs the Python rule itself.
:class:`Ledger` is the rule for the other writers, under their users' row locks: a
retry admitted by the daily and waiting limits, a start by id by the running cap and
the type's gate, and every move into or out of ``pending`` counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobdesk.errors import InvalidTransition
from jobdesk.limits import (
    EffectiveLimits,
    Limits,
    check_daily,
    check_waiting,
    created_today,
    overrides_of,
    usage_day,
)
from jobdesk.models import Action, Job, JobStatus, UserLimits, Worker
from jobdesk.scheduling import (
    QueuedUser,
    Rate,
    TypeGate,
    TypeLimits,
    WaitFacts,
    candidates,
    plan,
    vtime_after_start,
    vtime_on_arrival,
)
from jobdesk.store.postgres_connections import Connection, Q
from jobdesk.store.postgres_operator_queries import PostgresOperatorQueries
from jobdesk.store.postgres_rows import Row, job_from_row, time_text, types_param

__all__ = ["Ledger", "PostgresScheduling", "gate_from_row"]

#: ``wait_facts`` counts the jobs ahead of a job up to this many, then stops counting
AHEAD_BOUND = 10_000


def gate_from_row(row: Row) -> TypeGate:
    """A ``type_gates`` row as the :class:`TypeGate` the rule reads."""
    rate = None if row["rate_count"] is None else Rate(row["rate_count"], row["rate_period"])
    return TypeGate(
        TypeLimits(row["type"], row["max_running"], rate), row["running"], row["next_start_at"]
    )


@dataclass(slots=True)
class _UserState:
    row: Row
    limits: EffectiveLimits
    waiting: int
    vtime: float
    running: int
    created_today: int
    counted_a_creation: bool = False
    changed: bool = False


class Ledger:
    """A locked update's users and types as the rules see them while its changes are
    decided, in order: what :meth:`admit` refuses and what it counts."""

    def __init__(
        self, users: Sequence[Row], gates: dict[str, TypeGate], limits: Limits, now: datetime
    ) -> None:
        self.now = now
        self.gates = gates
        self.users = {
            row["user_id"]: _UserState(
                row=row,
                limits=limits.for_user(overrides_of(row)),
                waiting=row["waiting"],
                vtime=row["vtime"],
                running=row["running"],
                created_today=created_today(row, now),
            )
            for row in users
        }
        self._rated: set[str] = set()

    async def admit(self, before: Job, after: Job) -> None:
        """Judge one status change of a job by the limits, then count it (as
        :data:`~jobdesk.store.postgres_rows.Admit`)."""
        user = self.users[before.user_id]
        into_pending = after.status is JobStatus.PENDING and before.status is not JobStatus.PENDING
        retried = into_pending and before.status.is_finished
        started = after.status is JobStatus.PROCESSING and before.status is JobStatus.PENDING
        gate = self.gates.get(before.type)
        if retried:
            check_daily(user.created_today, user.limits.max_daily, self.now)
            check_waiting(user.waiting, user.limits.max_waiting)
        if started:
            self._check_start(before, user, gate)
        user.changed = True
        if retried:
            user.created_today += 1
            user.counted_a_creation = True
        if into_pending:
            if user.waiting == 0:
                user.vtime = vtime_on_arrival(user.vtime, user.row["floor"])
            user.waiting += 1
        elif before.status is JobStatus.PENDING:
            user.waiting -= 1
        if started:
            user.running += 1
            user.vtime = vtime_after_start(user.vtime, user.limits.weight)
            if gate is not None:
                gate.started(self.now)
                if gate.limits.rate is not None:
                    self._rated.add(before.type)
        elif before.status is JobStatus.PROCESSING:
            user.running -= 1
            if gate is not None:
                gate.running -= 1

    def _check_start(self, job: Job, user: _UserState, gate: TypeGate | None) -> None:
        start = Action.START.value
        if user.running >= user.limits.max_running:
            raise InvalidTransition(
                job.id,
                job.status.value,
                start,
                f"{job.user_id} already has {user.running} jobs running "
                f"(max_running {user.limits.max_running})",
            )
        if gate is None or gate.open(self.now):
            return
        pool = gate.limits.max_running
        if pool is not None and gate.running >= pool:
            raise InvalidTransition(job.id, job.status.value, start, "the type's pool is full")
        assert gate.next_start_at is not None
        raise InvalidTransition(
            job.id,
            job.status.value,
            start,
            f"the type's rate allows the next start at {gate.next_start_at.isoformat()}",
        )

    def user_changes(self) -> list[dict[str, Any]]:
        """``write_jobs``' users: each changed user's waiting move, clock and day count."""
        return [
            {
                "user_id": user_id,
                "waiting": user.waiting - user.row["waiting"],
                "vtime": user.vtime,
                "usage_day": usage_day(self.now) if user.counted_a_creation else None,
                "created_on_day": user.created_today if user.counted_a_creation else None,
            }
            for user_id, user in self.users.items()
            if user.changed
        ]

    def type_changes(self) -> list[dict[str, Any]]:
        """``write_jobs``' types: the next start of each rated type a start by id spent."""
        return [
            {"type": name, "next_start_at": time_text(self.gates[name].next_start_at)}
            for name in sorted(self._rated)
        ]


class PostgresScheduling(PostgresOperatorQueries):
    """The scheduling operations of :class:`~jobdesk.store.postgres.PostgresStore`."""

    async def _ledger(
        self,
        connection: Connection,
        rows: Sequence[Row],
        limits: Limits,
    ) -> Ledger | None:
        """Lock the users and the limited types of locked job ``rows`` (after the jobs, in
        user_id then type order) and read them into a :class:`Ledger`."""
        if not rows:
            return None
        user_ids = sorted({row["user_id"] for row in rows})
        types = sorted({row["type"] for row in rows})
        locks = {"user_ids": user_ids, "types": types}
        await connection.execute(Q["lock_users_and_types"], locks)
        # Read after the locks, in statements of their own: a fresh snapshot.
        users = await self._fetch_all(Q["user_states"], {"user_ids": user_ids}, connection)
        gate_params = {"types": types, "now": self._now_param()}
        gates = await self._fetch_all(Q["type_gates"], gate_params, connection)
        found = {row["type"]: gate_from_row(row) for row in gates}
        return Ledger(users, found, limits, rows[0]["store_now"])

    async def claim(
        self,
        worker: Worker,
        types: frozenset[str] | None,
        limit: int,
        lease_seconds: float,
        limits: Limits,
    ) -> list[Job]:
        params = {
            "now": self._now_param(),
            "types": types_param(types),
            "limit": limit,
            "worker_id": worker.name,
            "lease_seconds": lease_seconds,
            "default_max_running": limits.max_running_per_user,
        }

        async def work(connection: Connection) -> list[Job]:
            cursor = await connection.execute(Q["claim"], params)
            return [job_from_row(row) for row in await cursor.fetchall()]

        return await self._run(work, single=True)

    async def ready_jobs(
        self, types: frozenset[str] | None, limit: int, limits: Limits
    ) -> list[Job]:
        async def work(connection: Connection) -> list[Job]:
            clock = await self._fetch_one(connection, Q["now"], {"now": self._now_param()})
            assert clock is not None
            now: datetime = clock["coalesce"]
            gate_params = {"types": None, "now": now}
            gate_rows = await self._fetch_all(Q["type_gates"], gate_params, connection)
            gates = {row["type"]: gate_from_row(row) for row in gate_rows}
            walk = await self._walk(
                connection, types=types, limit=limit, limits=limits, now=now, gates=gates
            )
            found = candidates(walk, limit=limit, now=now, gates=gates)
            return plan(found, limit=limit, now=now, gates=gates)

        return await self._run(work, write=False)

    async def _walk(
        self,
        connection: Connection,
        *,
        types: frozenset[str] | None,
        limit: int,
        limits: Limits,
        now: datetime,
        gates: dict[str, TypeGate],
    ) -> list[QueuedUser]:
        """The claim's walk, a page at a time until it holds ``limit`` candidates: each
        waiting user with their first ``limit`` due jobs of ``types`` whose gate is open
        (none for a user at their cap)."""
        page = 2 * limit + 8
        params: dict[str, Any] = {
            "now": now,
            "types": types_param(types),
            "closed": sorted(name for name, gate in gates.items() if not gate.open(now)),
            "limit": limit,
            "page": page,
            "default_max_running": limits.max_running_per_user,
            "after_vtime": None,
            "after_user": None,
        }
        walk: list[QueuedUser] = []
        while True:
            rows = await self._fetch_all(Q["walk"], params, connection)
            users: dict[str, QueuedUser] = {}
            for row in rows:
                user = users.get(row["walk_user"])
                if user is None:
                    user = users[row["walk_user"]] = QueuedUser(
                        row["walk_user"],
                        row["walk_vtime"],
                        row["walk_weight"],
                        row["walk_running"],
                        row["walk_max_running"],
                    )
                    walk.append(user)
                if row["id"] is not None:
                    user.jobs.append(job_from_row(row))
            enough = len(candidates(walk, limit=limit, now=now, gates=dict(gates))) >= limit
            if enough or len(users) < page:
                return walk
            params["after_vtime"], params["after_user"] = walk[-1].vtime, walk[-1].user_id

    async def set_type_limits(self, type_limits: TypeLimits) -> None:
        rate = type_limits.rate
        params = {
            "type": type_limits.type,
            "max_running": type_limits.max_running,
            "rate_count": None if rate is None else rate.count,
            "rate_period": None if rate is None else rate.period_seconds,
            "now": self._now_param(),
        }
        forget = type_limits.max_running is None and rate is None
        query = Q["delete_type_limits"] if forget else Q["upsert_type_limits"]

        async def work(connection: Connection) -> None:
            await connection.execute(query, params)

        await self._run(work)

    async def type_limits(self) -> list[TypeLimits]:
        async def work(connection: Connection) -> list[TypeLimits]:
            rows = await self._fetch_all(Q["select_type_limits"], {}, connection)
            return [
                TypeLimits(
                    row["type"],
                    row["max_running"],
                    None
                    if row["rate_count"] is None
                    else Rate(row["rate_count"], row["rate_period"]),
                )
                for row in rows
            ]

        return await self._run(work, write=False, single=True)

    async def wait_facts(self, job: Job, limits: Limits) -> WaitFacts:
        params = {
            "now": self._now_param(),
            "user_id": job.user_id,
            "priority": job.priority,
            "id": job.id,
            "bound": AHEAD_BOUND,
        }

        async def work(connection: Connection) -> WaitFacts:
            row = await self._fetch_one(connection, Q["wait_facts"], params)
            assert row is not None
            gate_params = {"types": [job.type], "now": row["store_now"]}
            gates = await self._fetch_all(Q["type_gates"], gate_params, connection)
            return WaitFacts(
                now=row["store_now"],
                user_running=row["running"],
                user_max_running=limits.for_user(UserLimits(row["max_running"])).max_running,
                gate=gate_from_row(gates[0]) if gates else None,
                ahead=row["ahead"],
            )

        return await self._run(work, write=False)

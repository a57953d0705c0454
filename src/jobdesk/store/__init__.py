"""The ``Store`` protocol: job operations, not SQL, between the core and a database.

A store keeps jobs, their history, tokens and per-user limits, and makes each
operation atomic. The rules themselves stay in :mod:`jobdesk.lifecycle` and
:mod:`jobdesk.limits`: a store runs them inside the transaction that holds the
rows they read. Two stores implement this protocol and pass one contract test
suite: :class:`~jobdesk.store.sqlite.SQLiteStore` and (for scale-out)
:class:`~jobdesk.store.postgres.PostgresStore`. What the two share beyond the
protocol (query loading, migrations, conventions) is in :mod:`jobdesk.store.common`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from jobdesk.changes import ChangeHub, Subscription
from jobdesk.errors import InvalidInput, JobdeskError
from jobdesk.groups import Group, NewGroup
from jobdesk.limits import Limits
from jobdesk.models import (
    Completion,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    QueueCount,
    ThroughputMinute,
    TokenRecord,
    UserLimits,
    UserLoad,
    UserUsage,
    Worker,
    WorkerSeen,
)
from jobdesk.retention import Cutoff, RetentionReport, RetentionState
from jobdesk.schedules import NewSchedule, Schedule
from jobdesk.scheduling import TypeLimits, WaitFacts

# Kept importable here for code written before jobdesk.store.common existed.
from jobdesk.store.common import load_queries as load_queries
from jobdesk.webhooks import Delivery, Outcome, Webhook

__all__ = ["Change", "Clock", "ScheduleChange", "Store", "open_store"]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware; injected in tests to move time."""

Change = Callable[[Job, datetime], Job]
"""A pure function from a job and the store's current time to the job's next state."""

ScheduleChange = Callable[[Schedule, datetime], Schedule]
"""A pure function from a schedule and the store's current time to the schedule's next state."""


class Store(Protocol):
    """What jobdesk needs from a database. Every method is one atomic operation.

    After each committed change a store publishes the changed jobs to ``hub``
    (PostgreSQL: to every process, through NOTIFY).
    """

    hub: ChangeHub

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None:
        """Release every connection."""

    async def now(self) -> datetime:
        """The store's clock: the time every rule is judged by."""

    async def secret(self) -> bytes:
        """The deployment's random secret (signs cursors), made once at migration."""

    async def insert_job(self, spec: NewJob, limits: Limits) -> tuple[Job, bool]:
        """Store a new job, or return the one with the same idempotency key.

        Within one transaction, serialised per user: an idempotent replay returns
        ``(jobdesk.lifecycle.replay(existing, spec), False)``; otherwise the user's
        admission limits are checked (:func:`jobdesk.limits.check_daily`, then
        :func:`~jobdesk.limits.check_waiting`, judged by
        :func:`~jobdesk.limits.created_today` and the user's ``waiting`` count) and the
        job made by :func:`jobdesk.lifecycle.create` is stored and returned with True.
        The user's ``waiting`` count goes up by one and, if it was zero, their clock
        comes up to the floor (:func:`jobdesk.scheduling.vtime_on_arrival`).
        """

    async def insert_jobs(self, specs: Sequence[NewJob], limits: Limits) -> list[Job]:
        """Store every job of ``specs`` (one user's) in one transaction, or none.

        Under the user's row lock, the batch must fit the daily and the waiting
        limits (:func:`~jobdesk.limits.check_daily`, then
        :func:`~jobdesk.limits.check_waiting`, with ``count=len(specs)``); else the
        refusal is raised and nothing is written. The jobs are those
        :func:`jobdesk.lifecycle.create` makes, in order; ``waiting`` and the clock as
        for :meth:`insert_job`.
        """

    async def get_job(self, job_id: str, user_id: str | None = None) -> Job | None:
        """One job; with ``user_id``, only if that user owns it."""

    async def update_jobs(
        self,
        changes: Sequence[tuple[str, Change]],
        limits: Limits,
        *,
        user_id: str | None = None,
    ) -> list[Job | JobdeskError]:
        """Apply each change to its locked job, all in one transaction, in order.

        Each entry's outcome is the job as it now stands, or the
        :class:`~jobdesk.errors.JobdeskError` its change raised (``JobNotFound``
        for a missing job, or one not ``user_id``'s); a refused entry writes
        nothing, the others commit together. Under the user's row lock, a change that
        makes a job pending again by the user's hand (a retry) is admitted as a create
        is (daily, then waiting limit; it counts toward the day), and a start
        (pending → processing) by the user's running cap and the type's gate
        (:class:`~jobdesk.errors.InvalidTransition` saying which), doing to the
        user's clock and the type's rate what a claim does. Every move into or out of
        ``pending`` keeps the user's ``waiting`` count, with the arrival rule. Status
        changes are appended to the jobs' history; a change that returns the job
        unchanged writes nothing.
        """

    async def list_jobs(
        self,
        user_id: str,
        *,
        statuses: tuple[JobStatus, ...] | None,
        types: frozenset[str] | None,
        project_id: str | None,
        before_id: str | None,
        limit: int,
    ) -> list[Job]:
        """A user's jobs with ids below ``before_id``, newest first, at most ``limit``."""

    async def list_jobs_changed_since(self, user_id: str, since: datetime, limit: int) -> list[Job]:
        """A user's jobs with ``updated_at >= since``, oldest change first, at most ``limit``."""

    async def ping(self) -> None:
        """One round trip to the database; :class:`StoreUnavailable` if it does not answer."""

    async def ready_jobs(
        self, types: frozenset[str] | None, limit: int, limits: Limits
    ) -> list[Job]:
        """The jobs a claim of ``limit`` would start now, in its order, starting none."""

    async def claim(
        self,
        worker: Worker,
        types: frozenset[str] | None,
        limit: int,
        lease_seconds: float,
        limits: Limits,
    ) -> list[Job]:
        """Start up to ``limit`` jobs for ``worker`` in one transaction, in fair order.

        The order is :func:`jobdesk.scheduling.plan`'s over the walk that finds its
        users: the waiting users by ``(vtime, user_id)``, passing over a user at
        their running cap (``Limits.for_user``) or without a job of ``types`` that
        is due and whose type's gate (:class:`~jobdesk.scheduling.TypeGate`) is
        open; the first ``limit`` others. Each job starts as
        :func:`jobdesk.lifecycle.start` makes it; users' clocks and ``waiting``
        counts and types' next start times are written in the same transaction.
        """

    async def complete_and_claim(
        self,
        worker: Worker,
        completions: Sequence[Completion],
        types: frozenset[str] | None,
        limit: int,
        *,
        lease_seconds: float,
        limits: Limits,
    ) -> tuple[list[Job | JobdeskError], list[Job]]:
        """Complete a batch (:func:`jobdesk.lifecycle.complete` on each) and claim up to
        ``limit`` ready jobs, in one transaction: one commit for a worker's whole cycle.

        The outcomes are those :meth:`update_jobs` gives for the completions, in order;
        the claimed jobs are those :meth:`claim` gives, in claim order.
        """

    async def requeue_expired(self, limits: Limits, batch_size: int) -> int:
        """Apply :func:`jobdesk.lifecycle.expire` to up to ``batch_size`` expired leases."""

    async def prune_finished(self, older_than: datetime, batch_size: int) -> int:
        """Delete up to ``batch_size`` jobs finished before ``older_than``, with their history."""

    async def delete_expired(
        self, cutoffs: Sequence[Cutoff], batch_size: int, after: datetime | None = None
    ) -> tuple[dict[JobStatus, int], datetime | None]:
        """Delete up to ``batch_size`` finished jobs that ``cutoffs`` (a
        :meth:`~jobdesk.retention.RetentionPolicy.cutoffs`) make expired and that finished
        at ``after`` or later, oldest first, with their history, in one transaction; how
        many of each status, and the newest ``finished_at`` deleted (``after`` if none):
        the ``after`` of the pass's next batch."""

    async def count_expired(self, cutoffs: Sequence[Cutoff]) -> dict[JobStatus, int]:
        """How many jobs :meth:`delete_expired` would delete in all, by status."""

    async def take_retention_lease(self, holder: str, seconds: float) -> bool:
        """Take (or renew) the deployment's one retention lease for ``seconds`` of the
        store's time, if it is free, expired or ``holder``'s own; whether it is now held."""

    async def end_retention_run(self, holder: str, report: RetentionReport | None) -> None:
        """Give up ``holder``'s retention lease, recording ``report`` as the last pass."""

    async def retention_state(self) -> RetentionState:
        """The retention lease's holder and the last recorded pass."""

    async def queue_stats(self, since: datetime) -> tuple[list[QueueCount], list[WorkerSeen]]:
        """Counts of pending and processing jobs, and of jobs finished since ``since``, by
        type and status (ordered); workers holding a job or that finished one since then."""

    def subscribe(self, *, ready_only: bool = False) -> AbstractAsyncContextManager[Subscription]:
        """Changes to jobs as they commit, for the ``async with`` block.

        With ``ready_only`` the store may leave out every change but jobs becoming
        pending (what a waiting worker needs), if that is cheaper.
        """

    async def job_events(self, job_id: str) -> list[JobEvent]:
        """A job's status changes, oldest first."""

    async def insert_token(self, record: TokenRecord) -> None:
        """Store a token (its hash). A live worker token's name must be unused."""

    async def get_token(self, kind: str, key_id: str) -> TokenRecord | None:
        """The token row with this key id, revoked or not."""

    async def revoke_tokens(self, kind: str, subject: str) -> int:
        """Revoke every live token of ``subject``; how many were revoked."""

    async def list_tokens(self, kind: str) -> list[TokenRecord]:
        """Every token of ``kind``, newest first."""

    async def set_user_limits(self, user_id: str, user_limits: UserLimits) -> None:
        """Store per-user overrides of the default limits (all of them, None for none)."""

    async def user_usage(self, user_id: str, limits: Limits) -> UserUsage:
        """A user's effective limits and current use (:func:`jobdesk.limits.usage`)."""

    async def set_type_limits(self, type_limits: TypeLimits) -> None:
        """Store a type's pool and rate; with neither, forget the type's limits."""

    async def type_limits(self) -> list[TypeLimits]:
        """Every type with a pool or a rate, by type."""

    async def wait_facts(self, job: Job, limits: Limits) -> WaitFacts:
        """What :func:`jobdesk.scheduling.why_waiting` needs to explain a pending job:
        the store's time, the user's running jobs and cap, the type's gate, and how
        many of the user's own due jobs come before it (None if not counted)."""

    # -- groups ------------------------------------------------------------------------------

    async def insert_group(
        self, group: NewGroup, specs: Sequence[NewJob], limits: Limits
    ) -> tuple[Group, list[Job]]:
        """Store a group and every job of ``specs`` (its user's) in one transaction, or none.

        The jobs are admitted as :meth:`insert_jobs` admits a batch (the daily and the
        waiting limits for ``len(specs)`` jobs, refused whole) and made as
        :func:`jobdesk.lifecycle.create` makes them; the group lists them in order. On
        PostgreSQL this is one round trip. Returns the group (as
        :meth:`get_group` would) and its jobs.
        """

    async def get_group(self, group_id: str, user_id: str | None = None) -> Group | None:
        """One group with its jobs' counts and progress; with ``user_id``, only if that
        user owns it."""

    async def list_groups(
        self, user_id: str, *, project_id: str | None, before_id: str | None, limit: int
    ) -> list[Group]:
        """A user's groups with ids below ``before_id``, newest first, at most ``limit``."""

    async def list_group_jobs(self, group_id: str, *, after: int, limit: int) -> list[Job]:
        """A group's jobs in the group's order, from position ``after`` on, at most ``limit``."""

    async def group_job_ids(self, group_id: str, statuses: tuple[JobStatus, ...]) -> list[str]:
        """The ids of a group's jobs in ``statuses``, in the group's order."""

    async def set_group_cancelled(self, group_id: str, cancelled: bool) -> None:
        """Mark the group cancelled (at the store's time) or no longer cancelled."""

    async def groups_to_finish(self, limit: int) -> list[Group]:
        """Groups with a fan-in job still to make: not cancelled, and no job active
        (:func:`jobdesk.groups.is_finished`), at most ``limit``."""

    async def set_fan_in(self, group_id: str, job_id: str) -> None:
        """Record the group's fan-in job (made with :func:`jobdesk.groups.fan_in_key`)."""

    # -- webhooks ----------------------------------------------------------------------------

    async def set_webhook(self, webhook: Webhook) -> Webhook:
        """Store the webhook of its user or project (replacing theirs, keeping its id and
        outbox), and make every later job transition of theirs go to the outbox, in the
        transition's own transaction (a trigger on the jobs' history, on only while some
        webhook asks for a job event); and, while a webhook asks for ``group.*`` events,
        every change of a group's status too (triggers on the history and the cancel
        mark)."""

    async def remove_webhook(self, webhook_id: str) -> bool:
        """Forget a webhook and its undelivered deliveries; whether it existed."""

    async def list_webhooks(self) -> list[Webhook]:
        """Every webhook, oldest first (with its secret: for operators)."""

    async def claim_deliveries(
        self, limit: int, lease_seconds: float
    ) -> list[tuple[Delivery, Webhook]]:
        """Up to ``limit`` due deliveries, each the oldest pending one of its webhook and
        job (in order per job), put off by ``lease_seconds`` so that no other sender takes
        them meanwhile (a sender that dies leaves them to the next: at least once)."""

    async def record_deliveries(self, outcomes: Sequence[Outcome]) -> None:
        """Record sends' outcomes, in one write: ``delivered``, ``pending`` again after
        ``delay`` seconds, or ``dead``; one more try each (unless not ``counted``: handed
        back unsent), the response kept. A delivery no longer pending is left alone."""

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs of ``job_ids`` that exist, in no particular order (any user's)."""

    async def list_deliveries(
        self, *, state: str | None, webhook_id: str | None, limit: int
    ) -> list[Delivery]:
        """Deliveries, newest first, by state and webhook (None: any)."""

    async def redeliver(self, delivery_id: str) -> bool:
        """A dead (or delivered) delivery pending again, at once, with its tries reset."""

    # -- for operators (the admin dashboard): bounded by a time window or a limit ----------

    async def throughput(self, since: datetime) -> list[ThroughputMinute]:
        """Jobs created, completed and failed per minute since ``since``; quiet minutes left out."""

    async def oldest_pending(self) -> datetime | None:
        """When the oldest pending job was created; None for an empty queue."""

    async def failed_jobs(self, since: datetime, limit: int) -> list[Job]:
        """Jobs that failed since ``since``, latest failure first, at most ``limit``."""

    async def top_users(self, now: datetime, limit: int) -> list[UserLoad]:
        """The ``limit`` users with the most active jobs and those with the most jobs created
        on ``now``'s UTC day (both numbers for each), busiest first."""

    # -- schedules (jobdesk.schedules) ------------------------------------------------------

    async def insert_schedule(self, spec: NewSchedule) -> Schedule:
        """Store the schedule :func:`jobdesk.schedules.create` makes at the store's time.

        A name already in use: :class:`~jobdesk.errors.InvalidInput` for ``name``,
        nothing written.
        """

    async def get_schedule(self, name: str) -> Schedule | None:
        """One schedule by name."""

    async def list_schedules(self, limit: int) -> list[Schedule]:
        """Schedules by name, at most ``limit``."""

    async def update_schedule(self, name: str, change: ScheduleChange) -> Schedule | None:
        """Apply ``change`` to the locked schedule; None if there is none of that name."""

    async def delete_schedule(self, name: str) -> bool:
        """Forget a schedule (the jobs it made stay); whether there was one."""

    async def run_due_schedules(self, limits: Limits, batch_size: int) -> tuple[int, list[Job]]:
        """Fire up to ``batch_size`` due schedules in one transaction: how many were
        fired, and the jobs made.

        The due schedules (:func:`jobdesk.schedules.is_due`, earliest tick first) are
        locked, passing over those another runner holds (PostgreSQL: ``SKIP LOCKED``;
        SQLite: the write lock holds them all). For each, :func:`jobdesk.schedules.fire`
        decides; a job it asks for (:func:`~jobdesk.schedules.job_for`) is created as
        :meth:`insert_job` creates one, admitted by its owner's limits (a refusal is
        recorded on the schedule, not raised), unless a job for that tick exists
        already; the schedule is then written as :func:`~jobdesk.schedules.fired`
        makes it, in the same transaction.
        """


def open_store(url: str, clock: Clock | None = None) -> Store:
    """The store for a database URL: ``sqlite:///path.db`` or ``postgresql://...``."""
    if not isinstance(url, str):
        raise InvalidInput("url", "must be a database URL such as sqlite:///jobdesk.db")
    # Imported here: the store modules import this one, and psycopg loads only when needed.
    if url.startswith("sqlite:"):
        from jobdesk.store.sqlite import SQLiteStore  # noqa: PLC0415

        return SQLiteStore.from_url(url, clock=clock)
    if url.startswith(("postgresql:", "postgres:")):
        from jobdesk.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore.from_url(url, clock=clock)
    raise InvalidInput("url", "must start with sqlite:/// or postgresql://")

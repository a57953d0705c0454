"""The lifecycle against a simple Python model, driven by a Hypothesis state machine.

Rules create, start, claim, report, complete, fail, release, snooze, cancel and retry
jobs, move the clock and reap expired leases, for two users with small limits and
different weights, three job types (unlimited, a pool of one, a rate of one a minute)
and two workers. Every claim must start exactly the jobs the scheduling rule picks
from the model's state, in its order (fair by weight across users, priority then age
within one); a start by id is refused at a running cap, a full pool or a spent rate.
After every step the desk must agree with the model, and the invariants hold: one
status per job, equal to the model's; no user with more than their running cap
processing; ``users.waiting`` (``get_user_usage().waiting``) equal to the pending
count; terminal statuses left only through a retry; at most one live lease per job;
attempts that never go down; the look at the queue equal to the next claim.

Each example runs on a fresh database through the sync facade, on a manual clock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobdesk import Job, JobStatus, Worker
from jobdesk.errors import InvalidTransition, JobNotFound, LeaseLost, RateLimited
from jobdesk.limits import next_midnight, usage_day
from jobdesk.scheduling import vtime_on_arrival
from jobdesk.sync import JobDesk as SyncJobDesk
from jobdesk.testing import ManualClock
from tests.integration.lifecycle_model import (
    ACTIVE,
    LIMITS,
    MAX_DAILY,
    MAX_RUNNING,
    MAX_WAITING,
    START,
    TERMINAL,
    TYPE_LIMITS,
    TYPES,
    USERS,
    WEIGHT,
    WORKERS,
    Lease,
    Model,
    ModelJob,
    nominal_backoff,
)


def store_url_for(directory: Path) -> str:
    """A fresh database for one example (a PostgreSQL run would create a database here)."""
    return f"sqlite:///{directory / 'model.db'}"


class LifecycleMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory(prefix="jobdesk-model-")
        self.clock = ManualClock(START)
        url = store_url_for(Path(self.directory.name))
        self.database = url.removeprefix("sqlite:///")
        self.desk = SyncJobDesk.open(url, limits=LIMITS, clock=self.clock)
        for user_id in USERS:
            self.desk.set_user_limits(
                user_id,
                max_running=MAX_RUNNING[user_id],
                max_waiting=MAX_WAITING[user_id],
                max_daily=MAX_DAILY[user_id],
                weight=WEIGHT[user_id],
            )
        for name, limits in TYPE_LIMITS.items():
            rate = None if limits.rate is None else str(limits.rate)
            self.desk.set_type_limits(name, max_running=limits.max_running, rate=rate)
        self.workers = {
            name: self.desk.verify_worker_token(self.desk.create_worker_token(name))
            for name in WORKERS
        }
        self.model = Model()
        self.seen_attempts: dict[str, int] = {}
        self.seen_statuses: dict[str, JobStatus] = {}
        self.retried: set[str] = set()
        self.handed_out: list[Lease] = []

    def teardown(self) -> None:
        self.desk.close()
        self.directory.cleanup()

    # -- user rules -------------------------------------------------------------------------

    @rule(
        target=jobs,
        user_id=st.sampled_from(USERS),
        job_type=st.sampled_from(TYPES),
        priority=st.integers(0, 2),
        max_attempts=st.sampled_from([1, 1, 2, 3]),  # often spent: expiry then fails the job
    )
    def create(self, user_id: str, job_type: str, priority: int, max_attempts: int) -> object:
        now = self.clock()
        day = (user_id, usage_day(now))
        over = self._over_admission(user_id)
        refusal: RateLimited | None
        try:
            job = self.desk.create_job(
                user_id, job_type, {"p": priority}, priority=priority, max_attempts=max_attempts
            )
        except RateLimited as exc:
            refusal = exc
        else:
            refusal = None
        if refusal is not None:
            event(f"create refused: {refusal.limit}")
            assert refusal.limit == over, (refusal.limit, over)
            if refusal.limit == "daily":
                seconds = (next_midnight(now) - now).total_seconds()
                assert refusal.retry_after is not None
                assert seconds <= refusal.retry_after < seconds + 1
            return multiple()
        assert over is None, f"created although over the {over} limit"
        event("create")
        assert (job.status, job.attempt, job.run_at) == (JobStatus.PENDING, 0, now)
        self.model.created[day] = self.model.created.get(day, 0) + 1
        self.model.arrive(user_id)
        self.model.jobs[job.id] = ModelJob(job.id, user_id, priority, max_attempts, now, job)
        return job.id

    def _over_admission(self, user_id: str) -> str | None:
        """The limit admission must refuse one more job of the user by: daily, then waiting."""
        if self.model.created.get((user_id, usage_day(self.clock())), 0) >= MAX_DAILY[user_id]:
            return "daily"
        if self.model.waiting(user_id) >= MAX_WAITING[user_id]:
            return "waiting"
        return None

    @rule(job_id=jobs, as_owner=st.booleans())
    def cancel(self, job_id: str, as_owner: bool) -> None:
        job = self.model.jobs[job_id]
        user_id = job.user_id if as_owner else next(u for u in USERS if u != job.user_id)
        if not as_owner:
            try:
                self.desk.cancel_job(job_id, user_id)
            except JobNotFound:
                return
            raise AssertionError("cancelled another user's job")
        if job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            try:
                self.desk.cancel_job(job_id, user_id)
            except InvalidTransition:
                return
            raise AssertionError(f"cancelled a {job.status} job")
        event(f"cancel of a {job.status} job")
        cancelled = self.desk.cancel_job(job_id, user_id)
        if job.status is not JobStatus.CANCELLED:
            job.cancel_requested = job.status is JobStatus.PROCESSING
            job.status = JobStatus.CANCELLED
            job.lease_expires_at = None
        assert cancelled.status is JobStatus.CANCELLED
        assert cancelled.cancel_requested is job.cancel_requested

    @rule(job_id=jobs)
    def retry(self, job_id: str) -> None:
        job = self.model.jobs[job_id]
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            try:
                self.desk.retry_job(job_id, job.user_id)
            except InvalidTransition:
                event(f"retry refused: {job.status}")
                return
            raise AssertionError(f"retried a {job.status} job")
        over = self._over_admission(job.user_id)
        if over is not None:
            event(f"retry refused: {over}")
            try:
                self.desk.retry_job(job_id, job.user_id)
            except RateLimited as exc:
                limit = exc.limit
            else:
                raise AssertionError(f"retried over the {over} limit")
            assert limit == over
            return
        event(f"retry of a {job.status} job")
        retried = self.desk.retry_job(job_id, job.user_id)
        # A retry is admitted as a creation: it counts toward the day and arrives.
        day = (job.user_id, usage_day(self.clock()))
        self.model.created[day] = self.model.created.get(day, 0) + 1
        self.model.arrive(job.user_id)
        job.status = JobStatus.PENDING
        job.attempt_offset = job.attempt
        job.run_at = self.clock()
        job.worker = None
        job.lease_expires_at = None
        job.cancel_requested = False
        self.retried.add(job_id)
        assert (retried.status, retried.attempt) == (JobStatus.PENDING, job.attempt)

    # -- worker rules -----------------------------------------------------------------------

    def _started(self, job: ModelJob, worker: str) -> Lease:
        """The job as a start leaves it (its user's clock and its type's rate are the
        caller's: a claim takes them from the plan)."""
        job.status = JobStatus.PROCESSING
        job.attempt += 1
        job.worker = worker
        job.lease_expires_at = self.clock() + timedelta(seconds=LIMITS.lease_seconds)
        job.cancel_requested = False
        lease = Lease(job.id, worker, job.attempt)
        self.handed_out.append(lease)
        return lease

    def _anything_pending(self) -> bool:
        return any(job.status is JobStatus.PENDING for job in self.model.jobs.values())

    @precondition(_anything_pending)  # due or not: claims of jobs in backoff must find nothing
    @rule(target=leases, worker=st.sampled_from(WORKERS), limit=st.integers(1, 3))
    def claim(self, worker: str, limit: int) -> object:
        expected, users, gates = self.model.plan(self.clock(), limit)
        claimed = self.desk.claim_jobs(self.workers[worker], limit=limit)
        assert [job.id for job in claimed] == [job.id for job in expected]
        event(f"claim of {len(claimed)} jobs")
        if len({job.user_id for job in claimed}) > 1:
            event("claim across users")
        capped = [
            job
            for job in self.model.jobs.values()
            if job.status is JobStatus.PENDING
            and job.run_at <= self.clock()
            and self.model.running(job.user_id) >= MAX_RUNNING[job.user_id]
        ]
        if capped:
            event("claim passes over a capped user's due job")
        for user in users:
            self.model.vtime[user.user_id] = user.vtime
        for name, gate in gates.items():
            self.model.next_start_at[name] = gate.next_start_at
        handed = [self._started(job, worker) for job in expected]
        assert [job.attempt for job in claimed] == [lease.attempt for lease in handed]
        return multiple(*handed)

    @rule(target=leases, job_id=jobs, worker=st.sampled_from(WORKERS))
    def start(self, job_id: str, worker: str) -> object:
        return self._start(self.model.jobs[job_id], worker)

    @rule(target=leases, user_id=st.sampled_from(USERS), worker=st.sampled_from(WORKERS))
    def start_a_due_job_of(self, user_id: str, worker: str) -> object:
        """A start by id of the user's next due job: at their running cap, refused."""
        now = self.clock()
        due = [
            job
            for job in self.model.jobs.values()
            if job.user_id == user_id and job.status is JobStatus.PENDING and job.run_at <= now
        ]
        if not due:
            return multiple()
        return self._start(min(due, key=lambda job: (-job.priority, job.id)), worker)

    def _start(self, job: ModelJob, worker: str) -> object:
        job_id = job.id
        refusal = self.model.why_not_startable(job, self.clock())
        if refusal is not None:
            try:
                self.desk.start_job(self.workers[worker], job_id)
            except InvalidTransition:
                event(f"start refused: {refusal}")
                return multiple()
            raise AssertionError(f"started a {job.status} job due at {job.run_at}: {refusal}")
        event("start")
        started = self.desk.start_job(self.workers[worker], job_id)
        self.model.started(job, self.clock())
        lease = self._started(job, worker)
        assert started.attempt == lease.attempt
        return multiple(lease)

    def _holds(self, lease: Lease) -> bool:
        return self.model.holds(lease, self.clock())

    @rule(lease=leases, progress=st.none() | st.integers(0, 100))
    def report(self, lease: Lease, progress: int | None) -> None:
        job = self.model.jobs[lease.job_id]
        worker = self.workers[lease.worker]
        cancelled_under = (
            job.status is JobStatus.CANCELLED
            and job.cancel_requested
            and (job.worker, job.attempt) == (lease.worker, lease.attempt)
        )
        holds = self._holds(lease)
        try:
            if progress is None:
                reply = self.desk.heartbeat_job(worker, lease.job_id, attempt=lease.attempt)
            else:
                reply = self.desk.update_job_progress(
                    worker, lease.job_id, progress, attempt=lease.attempt
                )
        except LeaseLost:
            event("report refused: lease lost")
            assert not holds, "a held lease was refused"
            assert not cancelled_under, "a cancelled worker was not told"
            return
        assert holds or cancelled_under, "a lost lease was honoured"
        assert reply.cancel_requested is cancelled_under
        event(f"report answered cancel_requested={reply.cancel_requested}")
        if holds:
            job.lease_expires_at = self.clock() + timedelta(seconds=LIMITS.lease_seconds)
            assert reply.lease_expires_at == job.lease_expires_at

    def _write_under(self, lease: Lease, name: str, write: Callable[[Worker], Job]) -> Job | None:
        """A worker write: honoured exactly when the lease still holds, else LeaseLost."""
        holds = self._holds(lease)
        try:
            job = write(self.workers[lease.worker])
        except LeaseLost:
            event(f"{name} refused: lease lost")
            assert not holds, f"{name}: a held lease was refused"
            return None
        assert holds, f"{name}: a lost lease was honoured"
        event(name)
        self.model.jobs[lease.job_id].lease_expires_at = None
        return job

    @rule(lease=consumes(leases))
    def complete(self, lease: Lease) -> None:
        result = {"by": lease.worker, "attempt": lease.attempt}
        done = self._write_under(
            lease,
            "complete",
            lambda w: self.desk.complete_job(w, lease.job_id, result, attempt=lease.attempt),
        )
        if done is not None:
            self.model.jobs[lease.job_id].status = JobStatus.COMPLETED
            assert (done.status, done.result) == (JobStatus.COMPLETED, result)

    @rule(lease=leases, retryable=st.booleans())
    def fail(self, lease: Lease, retryable: bool) -> None:
        job = self.model.jobs[lease.job_id]
        message = f"failure of attempt {lease.attempt}"
        failed = self._write_under(
            lease,
            "fail",
            lambda w: self.desk.fail_job(
                w, lease.job_id, message, retryable=retryable, attempt=lease.attempt
            ),
        )
        if failed is None:
            return
        if retryable and job.attempts_left > 0:
            self._check_backoff(job, failed.run_at)
            self.model.arrive(job.user_id)
            job.status, job.run_at, job.worker = JobStatus.PENDING, failed.run_at, None
        else:
            job.status = JobStatus.FAILED
        assert (failed.status, failed.error) == (job.status, {"message": message})

    @rule(lease=leases)
    def release(self, lease: Lease) -> None:
        job = self.model.jobs[lease.job_id]
        released = self._write_under(
            lease,
            "release",
            lambda w: self.desk.release_job(w, lease.job_id, attempt=lease.attempt),
        )
        if released is None:
            return
        self.model.arrive(job.user_id)
        job.status, job.run_at, job.worker = JobStatus.PENDING, self.clock(), None
        job.attempt_offset += 1  # a handed-back attempt is not spent
        assert (released.status, released.run_at) == (JobStatus.PENDING, job.run_at)
        assert released.attempts_left == job.attempts_left

    @rule(lease=leases, delay=st.sampled_from([0, 5, 90, 600]))
    def snooze(self, lease: Lease, delay: int) -> None:
        job = self.model.jobs[lease.job_id]
        snoozed = self._write_under(
            lease,
            "snooze",
            lambda w: self.desk.snooze_job(w, lease.job_id, delay, attempt=lease.attempt),
        )
        if snoozed is None:
            return
        self.model.arrive(job.user_id)
        run_at = self.clock() + timedelta(seconds=delay)
        job.status, job.run_at, job.worker = JobStatus.PENDING, run_at, None
        job.attempt_offset += 1  # not now is not a failure: the attempt is not spent
        assert (snoozed.status, snoozed.run_at, snoozed.error) == (JobStatus.PENDING, run_at, None)
        assert snoozed.attempts_left == job.attempts_left

    def _check_backoff(self, job: ModelJob, run_at: datetime) -> None:
        """A retry after a failure or an expired lease waits half to all of the nominal delay."""
        nominal = nominal_backoff(job.attempt - job.attempt_offset)
        delay = (run_at - self.clock()).total_seconds()
        assert nominal / 2 - 1e-3 <= delay <= nominal + 1e-3, (delay, nominal)

    # -- time -------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1, 10, 30, 59, 60, 61, 300, 3600]), reap=st.booleans())
    def advance_clock(self, seconds: int, reap: bool) -> None:
        self.clock.advance(seconds=seconds)
        event("advance the clock")
        if reap:
            self.requeue_expired()

    @rule()
    def requeue_expired(self) -> None:
        now = self.clock()
        expired = self.model.expired(now)
        arriving = {
            job.user_id
            for job in expired
            if job.attempts_left > 0 and not self.model.waiting(job.user_id)
        }
        # Users arriving together: each one's floor may or may not count the others
        # (the stores may take them in any order); what the store chose must be one
        # of those clocks, and the model goes on from it.
        choices = {
            user_id: {self.model.vtime[user_id]}
            | {
                vtime_on_arrival(self.model.vtime[user_id], floor)
                for floor in self._floors(user_id, arriving)
            }
            for user_id in arriving
        }
        assert self.desk.requeue_expired() == len(expired)
        if len(arriving) > 1:
            event("requeue_expired: users arriving together")
            stored = self._stored_vtimes()
            for user_id in arriving:
                assert stored[user_id] in choices[user_id], (user_id, stored, choices)
                self.model.vtime[user_id] = stored[user_id]
        elif arriving:
            self.model.arrive(*arriving)
        for job in expired:
            job.lease_expires_at = None
            if job.attempts_left > 0:
                event("requeue_expired: back to pending")
                requeued = self.desk.get_job_status(job.id, job.user_id)
                self._check_backoff(job, requeued.run_at)
                job.status = JobStatus.PENDING
                job.run_at = requeued.run_at
                job.worker = None
            else:
                event("requeue_expired: attempts spent, failed")
                job.status = JobStatus.FAILED

    def _floors(self, user_id: str, arriving: set[str]) -> list[float]:
        """Every floor the user's arrival may meet: the other waiting users' smallest clock,
        counting any of the users arriving with them, or none of them."""
        waiting = [self.model.vtime[u] for u in USERS if u != user_id and self.model.waiting(u)]
        together = [self.model.vtime[u] for u in arriving if u != user_id]
        floors = [min(waiting)] if waiting else []
        floors += [min([*waiting, vtime]) for vtime in together]
        return floors

    def _stored_vtimes(self) -> dict[str, float]:
        """The users' clocks as the store holds them: read only when the model allows
        more than one."""
        with contextlib.closing(sqlite3.connect(self.database)) as database:
            rows = database.execute("SELECT user_id, vtime FROM users").fetchall()
        return {str(user_id): float(vtime) for user_id, vtime in rows}

    # -- invariants -------------------------------------------------------------------------

    def _desk_jobs(self) -> dict[str, Job]:
        jobs: dict[str, Job] = {}
        for user_id in USERS:
            page = self.desk.get_user_jobs(user_id, limit=100)
            assert page.next_cursor is None
            jobs.update((job.id, job) for job in page.items)
        return jobs

    @invariant()
    def the_desk_agrees_with_the_model(self) -> None:
        listed = self._desk_jobs()
        assert listed.keys() == self.model.jobs.keys()
        for job_id, job in listed.items():
            model = self.model.jobs[job_id]
            assert job.user_id == model.user_id
            assert job.status is model.status, (job_id, job.status, model.status)
            assert (job.attempt, job.attempt_offset) == (model.attempt, model.attempt_offset)
            assert job.cancel_requested is model.cancel_requested
            assert job.lease_expires_at == model.lease_expires_at
            if job.status in ACTIVE:
                assert job.run_at == model.run_at
            if job.status is JobStatus.PROCESSING:
                assert job.worker_id == model.worker

    @invariant()
    def each_users_counts_stay_within_their_limits(self) -> None:
        for user_id in USERS:
            usage = self.desk.get_user_usage(user_id)
            assert usage.running == self.model.running(user_id) <= MAX_RUNNING[user_id]
            assert usage.waiting == self.model.waiting(user_id)
            assert (usage.max_running, usage.max_waiting, usage.weight) == (
                MAX_RUNNING[user_id],
                MAX_WAITING[user_id],
                WEIGHT[user_id],
            )
            day = (user_id, usage_day(self.clock()))
            assert usage.created_today == self.model.created.get(day, 0) <= MAX_DAILY[user_id]

    @invariant()
    def at_most_one_live_lease_per_job(self) -> None:
        now = self.clock()
        for job in self._desk_jobs().values():
            live = job.lease_expires_at is not None and job.lease_expires_at > now
            if job.status is not JobStatus.PROCESSING:
                assert job.lease_expires_at is None, job
            if live:
                assert job.worker_id is not None
        # Of every lease ever handed out, only the job's current attempt may still hold.
        holders = [lease for lease in self.handed_out if self._holds(lease)]
        assert len({lease.job_id for lease in holders}) == len(holders)

    @invariant()
    def terminal_statuses_are_left_only_by_a_retry_and_attempts_never_go_down(self) -> None:
        for job_id, job in self._desk_jobs().items():
            before = self.seen_statuses.get(job_id)
            if before in TERMINAL and job.status is not before:
                assert job_id in self.retried, f"{job_id} left {before} for {job.status}"
            assert job.attempt >= self.seen_attempts.get(job_id, 0)
            self.seen_statuses[job_id] = job.status
            self.seen_attempts[job_id] = job.attempt
        self.retried.clear()

    @invariant()
    def no_type_passes_its_pool(self) -> None:
        for name, gate in self.model.gates().items():
            if gate.limits.max_running is not None:
                assert gate.running <= gate.limits.max_running, name

    @invariant()
    def the_queue_is_shown_in_claim_order(self) -> None:
        shown = self.desk.get_pending_jobs(self.workers["worker-a"], limit=100)
        expected, _, _ = self.model.plan(self.clock(), 100)
        assert [job.id for job in shown] == [job.id for job in expected]


def test_the_lifecycle_matches_the_model() -> None:
    run_state_machine_as_test(
        LifecycleMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            database=None,
        ),
    )

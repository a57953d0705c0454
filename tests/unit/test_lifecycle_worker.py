"""What a worker's reports do to the job it holds, and how leases fence stale workers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobdesk import lifecycle
from jobdesk.errors import JobNotFound, LeaseLost
from jobdesk.limits import Limits
from jobdesk.models import Job, JobStatus, Worker
from tests.unit.builders import (
    ERROR,
    LEASE_SECONDS,
    LIMITS,
    NOW,
    OTHER_WORKER,
    WORKER,
    job_in,
    processing_job,
)

LATER = NOW + timedelta(seconds=30)
LEASE_END = NOW + timedelta(seconds=LEASE_SECONDS)

WorkerCall = Callable[[Job, datetime, Worker, int], Job]


def progress(job: Job, now: datetime, worker: Worker, attempt: int) -> Job:
    return lifecycle.report_progress(
        job,
        now,
        worker=worker,
        attempt=attempt,
        lease_seconds=LEASE_SECONDS,
        progress=50.0,
        message="half way",
    )


def heartbeat(job: Job, now: datetime, worker: Worker, attempt: int) -> Job:
    return lifecycle.report_progress(
        job, now, worker=worker, attempt=attempt, lease_seconds=60, progress=None, message=None
    )


def complete(job: Job, now: datetime, worker: Worker, attempt: int) -> Job:
    return lifecycle.complete(job, now, worker=worker, attempt=attempt, result={"count": 3})


def fail(job: Job, now: datetime, worker: Worker, attempt: int) -> Job:
    return lifecycle.fail(
        job, now, worker=worker, attempt=attempt, error=ERROR, retryable=True, limits=LIMITS
    )


WORKER_CALLS = [progress, heartbeat, complete, fail]
WRITES = [complete, fail]

LOST = {
    "stale-attempt": (processing_job(attempt=2), LATER, WORKER, 1),
    "newer-attempt-named": (processing_job(), LATER, WORKER, 2),
    "other-worker": (processing_job(), LATER, OTHER_WORKER, 1),
    "lease-ends-now": (processing_job(), LEASE_END, WORKER, 1),
    "lease-long-gone": (processing_job(), LEASE_END + timedelta(hours=1), WORKER, 1),
    "no-lease": (processing_job(lease_expires_at=None), LATER, WORKER, 1),
    "requeued": (fail(processing_job(), NOW, WORKER, 1), LATER, WORKER, 1),
    "completed": (job_in(JobStatus.COMPLETED), LATER, WORKER, 1),
    "failed": (job_in(JobStatus.FAILED), LATER, WORKER, 1),
    "cancelled-before-start": (job_in(JobStatus.PENDING), LATER, WORKER, 1),
    "cancelled-under-older-attempt": (
        lifecycle.cancel(processing_job(attempt=2), NOW),
        LATER,
        WORKER,
        1,
    ),
    "cancelled-under-other-worker": (
        lifecycle.cancel(processing_job(), NOW),
        LATER,
        OTHER_WORKER,
        1,
    ),
}


@pytest.mark.parametrize("call", WORKER_CALLS)
@pytest.mark.parametrize(("job", "now", "worker", "attempt"), list(LOST.values()), ids=list(LOST))
def test_a_worker_that_no_longer_holds_the_job_is_refused(
    call: WorkerCall, job: Job, now: datetime, worker: Worker, attempt: int
) -> None:
    with pytest.raises(LeaseLost) as caught:
        call(job, now, worker, attempt)
    assert caught.value.job_id == job.id


@pytest.mark.parametrize("call", WORKER_CALLS)
def test_a_worker_restricted_to_other_types_cannot_see_the_job(call: WorkerCall) -> None:
    with pytest.raises(JobNotFound):
        call(processing_job(), LATER, Worker("worker-1", frozenset({"send_email"})), 1)


@pytest.mark.parametrize("call", [progress, heartbeat])
def test_a_report_on_a_job_cancelled_under_this_attempt_changes_nothing(call: WorkerCall) -> None:
    cancelled = lifecycle.cancel(processing_job(), NOW)
    assert call(cancelled, LATER, WORKER, 1) is cancelled
    assert cancelled.cancel_requested is True


@pytest.mark.parametrize("call", WRITES)
def test_a_worker_cannot_write_to_a_job_cancelled_under_its_attempt(call: WorkerCall) -> None:
    with pytest.raises(LeaseLost, match="cancelled"):
        call(lifecycle.cancel(processing_job(), NOW), LATER, WORKER, 1)


def test_hold_accepts_the_worker_holding_the_current_attempt_until_the_lease_ends() -> None:
    job = processing_job()
    lifecycle.hold(job, WORKER, 1, LEASE_END - timedelta(microseconds=1))
    with pytest.raises(LeaseLost, match="expired"):
        lifecycle.hold(job, WORKER, 1, LEASE_END)


def test_progress_is_recorded_and_renews_the_lease() -> None:
    job = progress(processing_job(), LATER, WORKER, 1)
    assert (job.progress, job.progress_message) == (50.0, "half way")
    assert job.lease_expires_at == LATER + timedelta(seconds=LEASE_SECONDS)
    assert job.updated_at == LATER
    assert job.status is JobStatus.PROCESSING


def test_a_heartbeat_renews_the_lease_and_keeps_the_progress() -> None:
    reported = progress(processing_job(), NOW, WORKER, 1)
    job = heartbeat(reported, LATER, WORKER, 1)
    assert job.lease_expires_at == LATER + timedelta(seconds=60)
    assert (job.progress, job.progress_message) == (50.0, "half way")


def test_a_renewed_lease_outlives_the_first_one() -> None:
    renewed = heartbeat(processing_job(), LEASE_END - timedelta(seconds=1), WORKER, 1)
    assert complete(renewed, LEASE_END + timedelta(seconds=30), WORKER, 1).status == "completed"


def test_complete_records_the_result_and_finishes_the_job() -> None:
    job = complete(processing_job(error=ERROR, progress=90.0), LATER, WORKER, 1)
    assert job.status is JobStatus.COMPLETED
    assert job.result == {"count": 3}
    assert job.error is None
    assert job.progress == 100.0
    assert job.finished_at == job.updated_at == LATER
    assert job.lease_expires_at is None


def test_complete_accepts_no_result() -> None:
    job = lifecycle.complete(processing_job(), LATER, worker=WORKER, attempt=1, result=None)
    assert job.status is JobStatus.COMPLETED
    assert job.result is None


def test_a_retryable_failure_with_attempts_left_goes_back_to_the_queue_after_a_backoff() -> None:
    job = fail(processing_job(), LATER, WORKER, 1)
    assert job.status is JobStatus.PENDING
    assert job.error == ERROR
    assert LATER + timedelta(seconds=2.5) <= job.run_at <= LATER + timedelta(seconds=5)
    assert (job.worker_id, job.lease_expires_at, job.finished_at) == (None, None, None)
    assert job.attempt == 1
    assert job.attempts_left == 2


@given(
    attempts_made=st.integers(1, 99),
    more=st.integers(1, 5),
    offset=st.integers(0, 50),
    limits=st.sampled_from([LIMITS, Limits(retry_backoff_seconds=1, retry_backoff_max_seconds=30)]),
)
def test_a_requeued_job_waits_between_half_and_all_of_the_nominal_backoff(
    attempts_made: int, more: int, offset: int, limits: Limits
) -> None:
    running = processing_job(
        attempt=offset + attempts_made, attempt_offset=offset, max_attempts=attempts_made + more
    )
    job = lifecycle.fail(
        running,
        NOW,
        worker=WORKER,
        attempt=running.attempt,
        error=ERROR,
        retryable=True,
        limits=limits,
    )
    nominal = min(
        limits.retry_backoff_max_seconds,
        limits.retry_backoff_seconds * 2 ** (attempts_made - 1),
    )
    assert job.status is JobStatus.PENDING
    assert nominal / 2 <= (job.run_at - NOW).total_seconds() <= nominal


def test_a_failure_that_is_not_retryable_fails_the_job_at_once() -> None:
    job = lifecycle.fail(
        processing_job(),
        LATER,
        worker=WORKER,
        attempt=1,
        error=ERROR,
        retryable=False,
        limits=LIMITS,
    )
    assert job.status is JobStatus.FAILED
    assert job.error == ERROR
    assert job.attempts_left == 2
    assert job.finished_at == LATER
    assert job.lease_expires_at is None


def test_a_failure_on_the_last_attempt_fails_the_job_and_keeps_the_error() -> None:
    job = fail(processing_job(attempt=3), LATER, WORKER, 3)
    assert job.status is JobStatus.FAILED
    assert job.error == ERROR
    assert job.finished_at == LATER


def test_attempts_before_a_retry_do_not_count_against_the_new_budget() -> None:
    job = fail(processing_job(attempt=4, attempt_offset=3), LATER, WORKER, 4)
    assert job.status is JobStatus.PENDING
    assert LATER + timedelta(seconds=2.5) <= job.run_at <= LATER + timedelta(seconds=5)


def test_an_expired_lease_sends_the_job_back_to_the_queue_after_a_backoff() -> None:
    job = lifecycle.expire(processing_job(), LEASE_END, limits=LIMITS)
    assert job.status is JobStatus.PENDING
    assert job.updated_at == LEASE_END
    nominal = timedelta(seconds=LIMITS.retry_backoff_seconds)
    assert LEASE_END + nominal / 2 <= job.run_at <= LEASE_END + nominal
    assert job.error == lifecycle.LEASE_EXPIRED_ERROR
    assert (job.worker_id, job.lease_expires_at) == (None, None)
    assert job.attempt == 1


def test_an_expired_lease_on_the_last_attempt_fails_the_job() -> None:
    job = lifecycle.expire(processing_job(attempt=3), LEASE_END, limits=LIMITS)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error["code"] == "lease_expired"
    assert job.finished_at == LEASE_END


def test_a_lease_that_has_not_run_out_is_left_alone() -> None:
    running = processing_job()
    assert (
        lifecycle.expire(running, LEASE_END - timedelta(microseconds=1), limits=LIMITS) is running
    )


@pytest.mark.parametrize(
    "job",
    [
        job_in(JobStatus.PENDING),
        job_in(JobStatus.COMPLETED),
        job_in(JobStatus.FAILED),
        job_in(JobStatus.CANCELLED),
    ],
    ids=lambda job: job.status.value,
)
def test_expire_leaves_a_job_that_is_not_processing_alone(job: Job) -> None:
    assert lifecycle.expire(job, LEASE_END + timedelta(days=1), limits=LIMITS) is job


def test_the_attempt_that_replaced_an_expired_one_wins() -> None:
    expired = lifecycle.expire(processing_job(), LEASE_END, limits=LIMITS)
    taken_over = lifecycle.start(expired, expired.run_at, worker=OTHER_WORKER, lease_seconds=60)
    with pytest.raises(LeaseLost):
        complete(taken_over, expired.run_at, WORKER, 1)
    done = complete(taken_over, expired.run_at, OTHER_WORKER, 2)
    assert done.status is JobStatus.COMPLETED
    assert done.worker_id == "worker-2"

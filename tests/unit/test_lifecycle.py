"""What the user-side operations and starting do to a job: create, replay, start, cancel, retry."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from jobdesk import lifecycle
from jobdesk.errors import InvalidInput, InvalidTransition, JobNotFound
from jobdesk.models import JobStatus, Worker
from tests.unit.builders import (
    ERROR,
    LEASE_SECONDS,
    LIMITS,
    NOW,
    WORKER,
    job_in,
    new_job,
    pending_job,
    processing_job,
)

LATER = NOW + timedelta(minutes=5)


def test_create_makes_a_pending_job_stamped_with_the_store_time() -> None:
    spec = new_job(project_id="project-1", priority=7, max_attempts=5, idempotency_key="key-1")
    job = lifecycle.create(spec, NOW)
    assert job.status is JobStatus.PENDING
    assert (job.id, job.user_id, job.project_id, job.type) == (
        spec.id,
        "user-1",
        "project-1",
        "character_extraction",
    )
    assert job.input == {"episode_ids": ["ep-1"]}
    assert (job.priority, job.max_attempts, job.idempotency_key) == (7, 5, "key-1")
    assert job.created_at == job.updated_at == job.run_at == NOW
    assert (job.attempt, job.attempts_left, job.progress) == (0, 5, 0.0)
    assert (job.worker_id, job.lease_expires_at, job.started_at, job.finished_at) == (None,) * 4


def test_create_keeps_a_requested_run_at() -> None:
    job = lifecycle.create(new_job(run_at=LATER), NOW)
    assert job.run_at == LATER
    assert job.created_at == NOW


def test_replaying_the_same_request_returns_the_first_job() -> None:
    existing = pending_job(idempotency_key="key-1")
    replayed = lifecycle.replay(existing, new_job(id="01JNQ0000000000000000000ZZ"))
    assert replayed is existing


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "transcode"},
        {"project_id": "project-2"},
        {"input": {"episode_ids": ["ep-2"]}},
        {"input": {"episode_ids": ["ep-1"], "language": "fr"}},
        {"input": None},
    ],
    ids=["type", "project", "input", "extra-key", "no-input"],
)
def test_replaying_a_key_for_a_different_job_is_refused(changes: dict[str, Any]) -> None:
    existing = pending_job(idempotency_key="key-1")
    with pytest.raises(InvalidInput) as caught:
        lifecycle.replay(existing, new_job(**changes))
    assert caught.value.field == "idempotency_key"


@pytest.mark.parametrize(
    ("first", "second"),
    [({"count": 1}, {"count": True}), ({"count": 0}, {"count": False}), ([1], [True])],
    ids=["one-vs-true", "zero-vs-false", "in-a-list"],
)
def test_replaying_a_key_with_a_different_json_document_is_refused(first: Any, second: Any) -> None:
    # Python says 1 == True, but 1 and true are different JSON inputs for a worker.
    existing = pending_job(input=first, idempotency_key="key-1")
    with pytest.raises(InvalidInput) as caught:
        lifecycle.replay(existing, new_job(input=second))
    assert caught.value.field == "idempotency_key"


def test_start_gives_the_worker_a_new_attempt_under_a_new_lease() -> None:
    job = lifecycle.start(pending_job(), LATER, worker=WORKER, lease_seconds=LEASE_SECONDS)
    assert job.status is JobStatus.PROCESSING
    assert job.attempt == 1
    assert job.worker_id == "worker-1"
    assert job.started_at == job.updated_at == LATER
    assert job.lease_expires_at == LATER + timedelta(seconds=LEASE_SECONDS)
    assert (job.progress, job.progress_message, job.cancel_requested) == (0.0, None, False)


def test_start_after_a_requeue_increments_the_attempt_and_resets_progress() -> None:
    requeued = pending_job(attempt=2, progress=40.0, progress_message="4 of 10", error=ERROR)
    job = lifecycle.start(requeued, NOW, worker=WORKER, lease_seconds=60)
    assert job.attempt == 3
    assert (job.progress, job.progress_message) == (0.0, None)
    assert job.lease_expires_at == NOW + timedelta(seconds=60)


def test_a_worker_restricted_to_other_types_cannot_see_the_job() -> None:
    with pytest.raises(JobNotFound) as caught:
        lifecycle.start(
            pending_job(), NOW, worker=Worker("mailer", frozenset({"send_email"})), lease_seconds=60
        )
    assert caught.value.job_id == pending_job().id


def test_a_worker_restricted_to_the_jobs_type_may_start_it() -> None:
    worker = Worker("gpu-1", frozenset({"character_extraction"}))
    job = lifecycle.start(pending_job(), NOW, worker=worker, lease_seconds=60)
    assert job.worker_id == "gpu-1"


def test_a_job_that_is_not_due_cannot_start() -> None:
    with pytest.raises(InvalidTransition, match="not due until") as caught:
        lifecycle.start(pending_job(run_at=LATER), NOW, worker=WORKER, lease_seconds=60)
    assert (caught.value.status, caught.value.action) == ("pending", "started")


def test_a_job_starts_exactly_when_it_is_due() -> None:
    job = lifecycle.start(pending_job(run_at=LATER), LATER, worker=WORKER, lease_seconds=60)
    assert job.status is JobStatus.PROCESSING


@pytest.mark.parametrize(
    "status",
    [JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED],
)
def test_only_a_pending_job_can_start(status: JobStatus) -> None:
    with pytest.raises(InvalidTransition) as caught:
        lifecycle.start(job_in(status), LATER, worker=WORKER, lease_seconds=60)
    assert caught.value.status == status.value


def test_cancelling_a_pending_job_frees_it_at_once_and_tells_no_worker() -> None:
    job = lifecycle.cancel(pending_job(), LATER)
    assert job.status is JobStatus.CANCELLED
    assert job.cancel_requested is False
    assert job.finished_at == job.updated_at == LATER
    assert job.lease_expires_at is None


def test_cancelling_a_processing_job_tells_its_worker() -> None:
    job = lifecycle.cancel(processing_job(), LATER)
    assert job.status is JobStatus.CANCELLED
    assert job.cancel_requested is True
    assert job.worker_id == "worker-1"
    assert job.attempt == 1
    assert job.lease_expires_at is None
    assert job.finished_at == LATER


def test_cancelling_a_cancelled_job_returns_it_unchanged() -> None:
    cancelled = job_in(JobStatus.CANCELLED)
    assert lifecycle.cancel(cancelled, LATER) is cancelled


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_a_finished_job_cannot_be_cancelled(status: JobStatus) -> None:
    with pytest.raises(InvalidTransition) as caught:
        lifecycle.cancel(job_in(status), LATER)
    assert (caught.value.status, caught.value.action) == (status.value, "cancelled")


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_retry_puts_a_failed_or_cancelled_job_back_in_the_queue(status: JobStatus) -> None:
    job = lifecycle.retry(job_in(status), LATER)
    assert job.status is JobStatus.PENDING
    assert job.run_at == job.updated_at == LATER
    assert (job.finished_at, job.worker_id, job.lease_expires_at, job.result) == (None,) * 4
    assert (job.cancel_requested, job.progress, job.progress_message) == (False, 0.0, None)


def test_retry_keeps_the_attempt_number_and_restarts_the_budget() -> None:
    spent = dataclasses.replace(job_in(JobStatus.FAILED), attempt=3)
    assert spent.attempts_left == 0
    job = lifecycle.retry(spent, LATER)
    assert job.attempt == 3
    assert job.attempt_offset == 3
    assert job.attempts_left == job.max_attempts


def test_a_retried_job_gets_a_full_budget_of_retryable_failures() -> None:
    job = lifecycle.retry(dataclasses.replace(job_in(JobStatus.FAILED), attempt=3), NOW)
    statuses = []
    for _ in range(job.max_attempts):
        job = lifecycle.start(job, job.run_at, worker=WORKER, lease_seconds=60)
        job = lifecycle.fail(
            job,
            job.run_at,
            worker=WORKER,
            attempt=job.attempt,
            error=ERROR,
            retryable=True,
            limits=LIMITS,
        )
        statuses.append(job.status)
    assert statuses == [JobStatus.PENDING, JobStatus.PENDING, JobStatus.FAILED]
    assert job.attempt == 6


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED])
def test_only_a_failed_or_cancelled_job_can_be_retried(status: JobStatus) -> None:
    with pytest.raises(InvalidTransition) as caught:
        lifecycle.retry(job_in(status), LATER)
    assert (caught.value.status, caught.value.action) == (status.value, "retried")

"""Properties that hold over any sequence of lifecycle calls, whatever order they come in."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from jobdesk import lifecycle
from jobdesk.errors import InvalidTransition, LeaseLost
from jobdesk.models import TRANSITIONS, Job, JobStatus
from tests.unit.builders import ERROR, LIMITS, NOW, OTHER_WORKER, WORKER, pending_job

Step = Callable[[Job, datetime], Job]

STEPS: dict[str, Step] = {
    "start": lambda job, now: lifecycle.start(job, now, worker=WORKER, lease_seconds=60),
    "start-elsewhere": lambda job, now: lifecycle.start(
        job, now, worker=OTHER_WORKER, lease_seconds=60
    ),
    "progress": lambda job, now: lifecycle.report_progress(
        job, now, worker=WORKER, attempt=job.attempt, lease_seconds=60, progress=10, message=None
    ),
    "stale-heartbeat": lambda job, now: lifecycle.report_progress(
        job,
        now,
        worker=WORKER,
        attempt=job.attempt - 1,
        lease_seconds=60,
        progress=None,
        message=None,
    ),
    "complete": lambda job, now: lifecycle.complete(
        job, now, worker=WORKER, attempt=job.attempt, result=[1]
    ),
    "fail": lambda job, now: lifecycle.fail(
        job, now, worker=WORKER, attempt=job.attempt, error=ERROR, retryable=True, limits=LIMITS
    ),
    "fail-for-good": lambda job, now: lifecycle.fail(
        job, now, worker=WORKER, attempt=job.attempt, error=ERROR, retryable=False, limits=LIMITS
    ),
    "cancel": lifecycle.cancel,
    "retry": lifecycle.retry,
    "expire": lambda job, now: lifecycle.expire(job, now, limits=LIMITS),
}
WAITS = {"wait-a-little": timedelta(seconds=1), "wait-long": timedelta(hours=2)}

scenarios = st.lists(st.sampled_from([*STEPS, *WAITS]), max_size=60)
budgets = st.integers(1, 4)


def run(steps: list[str], max_attempts: int) -> list[Job]:
    """Every state the job passes through, refused calls leaving it as it was."""
    job = pending_job(max_attempts=max_attempts)
    now = NOW
    history = [job]
    for step in steps:
        if step in WAITS:
            now += WAITS[step]
            continue
        with contextlib.suppress(InvalidTransition, LeaseLost):
            job = STEPS[step](job, now)
        history.append(job)
    return history


def allowed_targets(status: JobStatus) -> set[JobStatus]:
    return {target for (source, _), target in TRANSITIONS.items() if source is status}


@given(scenarios, budgets)
def test_the_attempt_number_never_goes_down(steps: list[str], max_attempts: int) -> None:
    history = run(steps, max_attempts)
    attempts = [job.attempt for job in history]
    assert attempts == sorted(attempts)


@given(scenarios, budgets)
def test_the_attempt_number_counts_every_start(steps: list[str], max_attempts: int) -> None:
    history = run(steps, max_attempts)
    starts = sum(
        before.status is JobStatus.PENDING and after.status is JobStatus.PROCESSING
        for before, after in itertools.pairwise(history)
    )
    assert history[-1].attempt == starts


@given(scenarios, budgets)
def test_no_budget_ever_allows_more_starts_than_max_attempts(
    steps: list[str], max_attempts: int
) -> None:
    for job in run(steps, max_attempts):
        assert 0 <= job.attempt - job.attempt_offset <= max_attempts
        assert job.attempt_offset <= job.attempt


@given(scenarios, budgets)
def test_every_status_change_follows_the_transition_table(
    steps: list[str], max_attempts: int
) -> None:
    history = run(steps, max_attempts)
    for before, after in itertools.pairwise(history):
        if after.status is not before.status:
            assert after.status in allowed_targets(before.status)


@given(scenarios, budgets)
def test_only_a_processing_job_has_a_lease_and_only_a_finished_one_a_finish_time(
    steps: list[str], max_attempts: int
) -> None:
    for job in run(steps, max_attempts):
        if job.status is JobStatus.PROCESSING:
            assert job.lease_expires_at is not None
            assert job.worker_id is not None
        else:
            assert job.lease_expires_at is None
        assert (job.finished_at is not None) is job.status.is_finished


@given(scenarios, budgets)
def test_a_completed_job_stays_completed_with_its_result(
    steps: list[str], max_attempts: int
) -> None:
    history = run(steps, max_attempts)
    completed = [job for job in history if job.status is JobStatus.COMPLETED]
    if completed:
        assert history[-1] is completed[0]
        assert history[-1].result == [1]


@given(scenarios, budgets)
def test_what_the_user_asked_for_never_changes(steps: list[str], max_attempts: int) -> None:
    first, *rest = run(steps, max_attempts)
    for job in rest:
        assert (job.id, job.user_id, job.type, job.input, job.created_at) == (
            first.id,
            first.user_id,
            first.type,
            first.input,
            first.created_at,
        )
        assert job.max_attempts == max_attempts

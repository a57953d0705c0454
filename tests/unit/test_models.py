"""The job model and the one table of allowed transitions."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobdesk.errors import InvalidTransition
from jobdesk.models import (
    ACTIVE_STATUSES,
    TRANSITIONS,
    Action,
    JobStatus,
    Worker,
    next_status,
    sources,
)
from tests.unit.builders import JOB_ID, pending_job

PENDING, PROCESSING = JobStatus.PENDING, JobStatus.PROCESSING
COMPLETED, FAILED, CANCELLED = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED

#: the diagram of DESIGN.md, written out by hand
DRAWN = {
    (PENDING, Action.START): PROCESSING,
    (PENDING, Action.CANCEL): CANCELLED,
    (PROCESSING, Action.COMPLETE): COMPLETED,
    (PROCESSING, Action.FAIL): FAILED,
    (PROCESSING, Action.REQUEUE): PENDING,
    (PROCESSING, Action.CANCEL): CANCELLED,
    (FAILED, Action.RETRY): PENDING,
    (CANCELLED, Action.RETRY): PENDING,
}
FORBIDDEN = [pair for pair in itertools.product(JobStatus, Action) if pair not in DRAWN]


def test_the_transition_table_is_the_drawn_diagram() -> None:
    assert dict(TRANSITIONS) == DRAWN


@pytest.mark.parametrize(("status", "action"), list(DRAWN))
def test_an_allowed_transition_leads_to_its_target(status: JobStatus, action: Action) -> None:
    assert next_status(JOB_ID, status, action) is DRAWN[(status, action)]


@pytest.mark.parametrize(("status", "action"), FORBIDDEN)
def test_every_other_transition_is_refused(status: JobStatus, action: Action) -> None:
    with pytest.raises(InvalidTransition) as caught:
        next_status(JOB_ID, status, action)
    assert (caught.value.job_id, caught.value.status, caught.value.action) == (
        JOB_ID,
        status.value,
        action.value,
    )
    assert JOB_ID in str(caught.value)


def test_forbidden_and_allowed_pairs_cover_every_status_and_action() -> None:
    assert len(FORBIDDEN) + len(DRAWN) == len(JobStatus) * len(Action)
    assert len(FORBIDDEN) == 22


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (Action.START, (PENDING,)),
        (Action.COMPLETE, (PROCESSING,)),
        (Action.FAIL, (PROCESSING,)),
        (Action.REQUEUE, (PROCESSING,)),
        (Action.CANCEL, (PENDING, PROCESSING)),
        (Action.RETRY, (FAILED, CANCELLED)),
    ],
)
def test_sources_lists_the_statuses_an_action_leaves(
    action: Action, expected: tuple[JobStatus, ...]
) -> None:
    assert sources(action) == expected


def test_a_completed_job_never_changes_again() -> None:
    assert not any(status is COMPLETED for status, _ in TRANSITIONS)


def test_every_status_is_reachable_from_pending() -> None:
    reached = {PENDING}
    frontier = [PENDING]
    while frontier:
        status = frontier.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is status and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(JobStatus)


@pytest.mark.parametrize(
    ("status", "active"),
    [(PENDING, True), (PROCESSING, True), (COMPLETED, False), (FAILED, False), (CANCELLED, False)],
)
def test_pending_and_processing_are_active_the_rest_finished(
    status: JobStatus, active: bool
) -> None:
    assert status.is_active is active
    assert status.is_finished is not active
    assert (status in ACTIVE_STATUSES) is active


def test_statuses_are_their_wire_strings() -> None:
    assert [status.value for status in JobStatus] == [
        "pending",
        "processing",
        "completed",
        "failed",
        "cancelled",
    ]
    assert JobStatus("failed") is FAILED
    assert FAILED == "failed"


@pytest.mark.parametrize(
    ("attempt", "attempt_offset", "max_attempts", "left"),
    [
        (0, 0, 3, 3),
        (1, 0, 3, 2),
        (3, 0, 3, 0),
        (5, 0, 3, 0),
        (3, 3, 3, 3),
        (4, 3, 3, 2),
        (1, 0, 1, 0),
    ],
)
def test_attempts_left_counts_starts_since_the_last_retry(
    attempt: int, attempt_offset: int, max_attempts: int, left: int
) -> None:
    job = pending_job(attempt=attempt, attempt_offset=attempt_offset, max_attempts=max_attempts)
    assert job.attempts_left == left


@given(
    attempt=st.integers(0, 1000),
    offset=st.integers(0, 1000),
    max_attempts=st.integers(1, 100),
)
def test_attempts_left_is_never_negative_nor_above_the_budget(
    attempt: int, offset: int, max_attempts: int
) -> None:
    job = pending_job(
        attempt=max(attempt, offset), attempt_offset=offset, max_attempts=max_attempts
    )
    assert 0 <= job.attempts_left <= max_attempts


def test_a_job_is_frozen() -> None:
    job = pending_job()
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.status = PROCESSING  # type: ignore[misc]


def test_an_unrestricted_worker_may_handle_any_type() -> None:
    worker = Worker("worker-1")
    assert worker.may_handle("character_extraction")
    assert worker.may_handle("anything.else")


def test_a_restricted_worker_may_handle_only_its_types() -> None:
    worker = Worker("gpu-1", frozenset({"character_extraction", "transcode"}))
    assert worker.may_handle("character_extraction")
    assert worker.may_handle("transcode")
    assert not worker.may_handle("send_email")


def test_a_worker_restricted_to_no_types_handles_nothing() -> None:
    assert not Worker("idle", frozenset()).may_handle("character_extraction")

"""The retention rule and its policy, without a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobdesk import JobStatus, RetentionPolicy
from jobdesk.errors import InvalidInput
from jobdesk.retention import (
    MAX_PERIOD,
    MIN_PERIOD,
    Cutoff,
    format_period,
    is_expired,
    parse,
    parse_period,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
POLICY = RetentionPolicy(cancelled=None, types={"render": {JobStatus.COMPLETED: timedelta(days=1)}})


@pytest.mark.parametrize(
    ("status", "type_", "age", "expired"),
    [
        (JobStatus.COMPLETED, "email", timedelta(days=7, seconds=1), True),
        (JobStatus.COMPLETED, "email", timedelta(days=7), False),  # exactly the period: kept
        (JobStatus.COMPLETED, "render", timedelta(days=1, seconds=1), True),  # the type's own
        (JobStatus.FAILED, "render", timedelta(days=29), False),  # the status's period
        (JobStatus.FAILED, "render", timedelta(days=31), True),
        (JobStatus.CANCELLED, "email", timedelta(days=3650), False),  # forever
        (JobStatus.PENDING, "email", timedelta(days=3650), False),  # never a live job
        (JobStatus.PROCESSING, "email", timedelta(days=3650), False),
    ],
)
def test_is_expired(status: JobStatus, type_: str, age: timedelta, expired: bool) -> None:
    assert is_expired(POLICY, status, type_, NOW - age, NOW) is expired


def test_an_unfinished_job_without_finished_at_is_never_expired() -> None:
    assert not is_expired(POLICY, JobStatus.COMPLETED, "email", None, NOW)


def test_cutoffs_are_a_row_per_status_then_per_overridden_type() -> None:
    assert POLICY.cutoffs(NOW) == [
        Cutoff(JobStatus.COMPLETED, None, NOW - timedelta(days=7)),
        Cutoff(JobStatus.FAILED, None, NOW - timedelta(days=30)),
        Cutoff(JobStatus.CANCELLED, None, None),
        Cutoff(JobStatus.COMPLETED, "render", NOW - timedelta(days=1)),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "completed=7d,failed=30d,cancelled=30d",
        "completed=12h,failed=forever,cancelled=90min",
        "completed=7d,failed=30d,cancelled=30d,a.b-c_d.failed=45min,render.completed=forever",
    ],
)
def test_the_text_form_reads_back_what_it_writes(text: str) -> None:
    assert parse(text).to_text() == text
    assert parse(parse(text).to_text()) == parse(text)


def test_statuses_not_named_keep_their_defaults() -> None:
    assert parse("completed=1d") == RetentionPolicy(completed=timedelta(days=1))
    assert parse("") == RetentionPolicy()
    assert parse_period("p", "2w") == timedelta(weeks=2)
    assert format_period(timedelta(days=14)) == "14d"
    assert format_period(None) == "forever"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("completed=-1d", "retention.completed"),
        ("completed=1.5d", "retention.completed"),
        ("completed=59s", "retention.completed"),
        (f"failed={MAX_PERIOD.days + 1}d", "retention.failed"),
        ("cancelled=99999999d", "retention.cancelled"),
        ("finished=1d", "retention.finished"),
        ("pending=1d", "retention.pending"),
        ("render.pending=1d", "retention.types.render"),
        ("Render.failed=1d", "retention.types"),
        ("render.failed=-3d", "retention.types.render.failed"),
        ("completed", "retention"),
    ],
)
def test_bad_text_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text)
    assert caught.value.field == field


def test_the_bounds_are_inclusive() -> None:
    assert RetentionPolicy(completed=MIN_PERIOD, failed=MAX_PERIOD).failed == MAX_PERIOD
    with pytest.raises(InvalidInput):
        RetentionPolicy(completed=MIN_PERIOD - timedelta(microseconds=1))


def test_the_policy_cannot_be_changed_behind_its_back() -> None:
    periods = {JobStatus.FAILED: timedelta(days=3)}
    policy = RetentionPolicy(types={"render": periods})
    periods[JobStatus.FAILED] = timedelta(days=300)
    assert policy.period_for(JobStatus.FAILED, "render") == timedelta(days=3)
    with pytest.raises(TypeError):
        policy.types["render"][JobStatus.FAILED] = None  # type: ignore[index]
